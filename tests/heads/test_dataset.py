"""Per-head examples (golden strings written by hand) and the completion-only loss mask."""

from __future__ import annotations

import pytest

from ohlora import formats
from ohlora.errors import DataError
from ohlora.heads.dataset import IGNORE_INDEX, head_examples, head_inputs, load_rows, tokenize_example

ROW = dict(
    data_type="train",
    input_data="[오늘 일정: 친구랑 카페 방문] 로라야 나 뭐 입고 갈까?",
    output_message="카페 가는구나! 편한 니트 어때? ☕",
    memory="[오늘 일정: 친구랑 카페 방문]",
    summary="사용자가 카페 갈 옷을 묻자 로라가 니트를 추천함",
    eyes_mouth_pose="(눈 보통, 입 보통, 고개 돌림 보통)",
)

# SPEC §2, written out by hand: "{input} (답변 시작) ### 답변: {output} (답변 종료) <|endoftext|>".
GOLDEN_TRAINING_TEXT = {
    "output_message": "[오늘 일정: 친구랑 카페 방문] 로라야 나 뭐 입고 갈까? (답변 시작) ### 답변: "
    "카페 가는구나! 편한 니트 어때? ☕ (답변 종료) <|endoftext|>",
    "memory": "[오늘 일정: 친구랑 카페 방문] 로라야 나 뭐 입고 갈까? (답변 시작) ### 답변: "
    "[오늘 일정: 친구랑 카페 방문] (답변 종료) <|endoftext|>",
    "summary": "[오늘 일정: 친구랑 카페 방문] 로라야 나 뭐 입고 갈까? (오로라 답변) 카페 가는구나! 편한 니트 어때? ☕ "
    "(답변 시작) ### 답변: 사용자가 카페 갈 옷을 묻자 로라가 니트를 추천함 (답변 종료) <|endoftext|>",
    "eyes_mouth_pose": "카페 가는구나! 편한 니트 어때? ☕ (답변 시작) ### 답변: "
    "(눈 보통, 입 보통, 고개 돌림 보통) (답변 종료) <|endoftext|>",
}
GOLDEN_INFERENCE_PROMPT = {
    "output_message": "[오늘 일정: 친구랑 카페 방문] 로라야 나 뭐 입고 갈까? (답변 시작) ### 답변:",
    "memory": "[오늘 일정: 친구랑 카페 방문] 로라야 나 뭐 입고 갈까? (답변 시작) ### 답변:",
    "summary": "[오늘 일정: 친구랑 카페 방문] 로라야 나 뭐 입고 갈까? (오로라 답변) 카페 가는구나! 편한 니트 어때? ☕ "
    "(답변 시작) ### 답변:",
    "eyes_mouth_pose": "카페 가는구나! 편한 니트 어때? ☕ (답변 시작) ### 답변:",
}


@pytest.mark.parametrize("head", list(GOLDEN_TRAINING_TEXT))
def test_golden_training_text_and_inference_prompt(head):
    (ex,) = head_examples([ROW], head)
    assert ex["prompt"] + ex["completion"] == GOLDEN_TRAINING_TEXT[head]
    # The loss-free part is exactly what generation starts from.
    assert ex["prompt"] == GOLDEN_INFERENCE_PROMPT[head]
    (text,) = head_inputs([{**ROW, "data_type": "valid"}], head)
    assert formats.inference_prompt(text) == GOLDEN_INFERENCE_PROMPT[head]


def test_empty_memory_is_a_target_rendered_with_two_spaces():
    row = {**ROW, "input_data": "로라야 안녕!", "memory": ""}
    (ex,) = head_examples([row], "memory")
    assert ex["prompt"] + ex["completion"] == "로라야 안녕! (답변 시작) ### 답변:  (답변 종료) <|endoftext|>"


def test_rows_without_a_target_or_of_the_other_split_are_skipped():
    no_summary = {**ROW, "summary": ""}
    valid_only_input = {"data_type": "valid", "input_data": "로라야 오늘 뭐 했어?"}
    rows = [ROW, no_summary, valid_only_input]
    assert len(head_examples(rows, "summary")) == 1
    assert len(head_examples(rows, "output_message")) == 2
    assert head_examples(rows, "memory", split="valid") == []  # no reply: not labelled
    # Valid prompts to generate from: the summary/expression heads need the reply.
    assert head_inputs(rows, "output_message") == ["로라야 오늘 뭐 했어?"]
    assert head_inputs(rows, "summary") == []
    with pytest.raises(ValueError, match="unknown head"):
        head_examples(rows, "reply")


def test_rows_from_persona_csv(persona_csv):
    rows = load_rows(persona_csv)
    assert len(head_examples(rows, "memory")) == 4  # the empty memory counts
    assert len(head_examples(rows, "eyes_mouth_pose")) == 4
    assert head_inputs(rows, "memory") == ["로라야 오늘 뭐 했어?", "[좋아하는 가수: 아이유] 요즘 무슨 노래 들어?"]


def _tokenizer(tiny_lm_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_lm_dir)


@pytest.mark.parametrize("head", list(GOLDEN_TRAINING_TEXT))
def test_mask_covers_exactly_the_prompt_up_to_the_answer_header(tiny_lm_dir, head):
    tok = _tokenizer(tiny_lm_dir)
    (ex,) = head_examples([ROW], head)
    f = tokenize_example(tok, ex["prompt"], ex["completion"], max_length=512)
    n_masked = sum(1 for lab in f["labels"] if lab == IGNORE_INDEX)
    # Masked: everything up to and including the last token of '### 답변:' ...
    assert tok.decode(f["input_ids"][:n_masked]) == GOLDEN_INFERENCE_PROMPT[head]
    assert tok.decode(f["input_ids"][:n_masked]).endswith("### 답변:")
    # ... and nothing after: the rest is the answer, learnt token for token.
    assert f["labels"][n_masked:] == f["input_ids"][n_masked:]
    assert all(lab != IGNORE_INDEX for lab in f["labels"][n_masked:])
    assert tok.decode(f["input_ids"][n_masked:]) == ex["completion"]
    assert f["input_ids"][-1] == tok.eos_token_id
    assert f["attention_mask"] == [1] * len(f["input_ids"])


def test_truncation_keeps_the_mask_and_can_leave_no_answer(tiny_lm_dir):
    tok = _tokenizer(tiny_lm_dir)
    (ex,) = head_examples([ROW], "output_message")
    n_prompt = len(tok(ex["prompt"])["input_ids"])
    f = tokenize_example(tok, ex["prompt"], ex["completion"], max_length=n_prompt + 2)
    assert f["labels"] == [IGNORE_INDEX] * n_prompt + f["input_ids"][n_prompt:]
    assert len(f["input_ids"]) == n_prompt + 2
    f = tokenize_example(tok, ex["prompt"], ex["completion"], max_length=5)
    assert f["labels"] == [IGNORE_INDEX] * 5


def test_a_tokenizer_that_merges_across_the_boundary_is_handled():
    """Without whitespace pre-tokenization BPE learns ': 응' as one token, so the prompt's
    ids are not a prefix of the whole text's; we then use prompt ids + completion ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=[formats.EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    raw.train_from_iterator(["### 답변: 응 좋아"] * 50, trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token=formats.EOS, pad_token=formats.EOS)

    prompt, completion = formats.training_prompt("로라야"), formats.training_completion("응 좋아")
    prompt_ids = tok(prompt)["input_ids"]
    whole = tok(prompt + completion)["input_ids"]
    assert whole[: len(prompt_ids)] != prompt_ids  # the premise: a merge across the boundary

    f = tokenize_example(tok, prompt, completion, max_length=512)
    assert f["input_ids"] == prompt_ids + tok(completion, add_special_tokens=False)["input_ids"]
    assert f["labels"][: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
    assert IGNORE_INDEX not in f["labels"][len(prompt_ids) :]
    assert tok.decode(f["input_ids"]) == prompt + completion


def test_fallback_reader_names_file_and_line(tmp_path):
    from ohlora.heads.dataset import _read_rows

    bad = tmp_path / "bad.csv"
    bad.write_text("data_type,input_data,output_message,memory,summary,eyes_mouth_pose\n"
                   "train,안녕,안녕!,,인사함,\"(눈 보통, 입 보통, 고개 돌림 없음)\"\n"
                   "test,로라야,응,,,\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.csv:3: data_type 'test'"):
        _read_rows(bad)
    missing = tmp_path / "missing.csv"
    missing.write_text("data_type,input_data\ntrain,안녕\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"missing\.csv:1: missing column"):
        _read_rows(missing)
