"""The `topic` memory encoder: features, fitting from five-column pair rows, the key table's
cosines, save/load, the CLI, and the errors of an unusable fit."""

from __future__ import annotations

import json
import math
import unicodedata

import numpy as np
import pytest

from ohlora.errors import OhloraError
from ohlora.memory.pairs import Pair
from ohlora.memory.topic_encoder import _Bag, _logistic, augment, char_grams, morph_runs, soft_targets, word_drop

# Three keys, four lines each; the key-pair scores are made up for the test (SPEC §4 would
# take them from a teacher): 가수 and 공연 are close, 날씨 is far from both.
LINES = [
    ("[좋아하는 가수: 아이유]", "로라야 노래 추천해 줘"),
    ("[좋아하는 가수: 로제]", "요즘 들을 음악 뭐 있어?"),
    ("[좋아하는 가수: 태연]", "이 가수 목소리 너무 좋아 🎵"),
    ("[좋아하는 가수: 아이유]", "아이유 신곡 들었어?"),
    ("[오늘 날씨: 비]", "우산 챙겨야 하나?"),
    ("[오늘 날씨: 맑음]", "햇살 진짜 좋다 ☀️"),
    ("[오늘 날씨: 흐림]", "하늘이 회색이야"),
    ("[오늘 날씨: 비]", "비 때문에 신발 다 젖었어"),
    ("[공연 보고 싶음: 콘서트]", "콘서트 티켓 예매하고 싶다"),
    ("[공연 보고 싶음: 뮤지컬]", "뮤지컬 보러 가고 싶어"),
    ("[공연 보고 싶음: 콘서트]", "공연장 가본 지 너무 오래됐어"),
    ("[공연 보고 싶음: 연극]", "주말에 연극 한 편 볼까"),
]
SCORES = {("좋아하는 가수", "공연 보고 싶음"): 0.7, ("좋아하는 가수", "오늘 날씨"): 0.1, ("오늘 날씨", "공연 보고 싶음"): 0.2}


def _key(memory: str) -> str:
    return memory[1:].split(":")[0]


def _score(a: str, b: str) -> float:
    return 1.0 if a == b else SCORES.get((a, b), SCORES.get((b, a)))


def _rows(lines=LINES) -> list[Pair]:
    return [Pair(m0, p1, _score(_key(m0), _key(m1)), 0, p0, m1) for m0, p0 in lines for m1, p1 in lines]


def _fit(pairs: list[Pair]):
    """`ohlora memory train --base topic` on pair rows, every line fitted."""
    from ohlora.memory.train import TrainArgs, train

    return train(None, None, base="topic", args=TrainArgs(valid_ratio=0.0), pairs=pairs, progress=False)


def _drop_config_entry(folder, entry: str) -> None:
    """Make a saved topic folder look like one from before `entry` existed."""
    path = folder / "topic_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    del config[entry]
    path.write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")


@pytest.fixture(scope="module")
def fitted():
    return _fit(_rows())


def test_char_grams_pad_words_and_ignore_how_the_text_was_typed():
    assert char_grams("롤 티어", n_max=2) == [" ", "롤", " ", " 롤", "롤 ", " ", "티", "어", " ", " 티", "티어", "어 "]
    messy = unicodedata.normalize("NFD", "오늘\u200b 날씨  좋다")
    assert char_grams(messy) == char_grams("오늘 날씨 좋다")


def test_morph_runs_join_adjacent_forms():
    forms = ["내일", "시험", "떨리"]
    assert morph_runs(forms, n_max=1) == []
    assert morph_runs(forms, n_max=2) == ["내일 시험", "시험 떨리"]
    assert morph_runs(forms, n_max=3) == ["내일 시험", "시험 떨리", "내일 시험 떨리"]
    assert morph_runs(["떨리"], n_max=3) == []


def test_runs_are_of_content_morphemes_and_skip_particles_and_endings():
    """`내일 시험이라 떨려` → runs 내일-시험 and 시험-떨리 (the copula and endings between them are
    skipped), beside the single forms, particles included."""
    from ohlora.memory.topic_encoder import TopicEncoder

    enc = TopicEncoder()
    enc.morph_ngrams = 2
    (forms, _), = enc._analyse(["내일 시험이라 떨려"])
    runs = [g for g in forms if " " in g]
    assert runs == ["내일 시험", "시험 떨리"]
    assert {"내일", "시험", "떨리"} <= set(forms) and len(forms) > 3 + len(runs)  # an ending or copula kept as a form


def test_word_drop_leaves_out_exactly_one_word_of_three_or_more():
    import random

    prompt = "로라야 나\u200b 내일 시험이라 떨려 😭"  # a zero-width space is not a word break: '나\u200b' is one word
    words = prompt.split()
    seen = set()
    for seed in range(40):
        out = word_drop(prompt, random.Random(seed)).split()
        assert len(out) == len(words) - 1
        gone = next(i for i in range(len(words)) if words[:i] + words[i + 1 :] == out)
        seen.add(gone)
    assert seen == set(range(len(words)))  # every word can be the one left out
    assert word_drop(prompt, random.Random(3)) == word_drop(prompt, random.Random(3))
    assert word_drop("노래 추천해", random.Random(0)) is None and word_drop("🎵", random.Random(0)) is None


def test_augment_makes_copies_rounds_and_says_where_each_text_came_from():
    prompts = ["로라야 노래 추천해 줘", "비 와", "요즘 들을 음악 뭐 있어?"]
    texts, source = augment(prompts, 2, seed=0)
    assert source.tolist() == [0, 2, 0, 2]  # the two-word prompt has no copy
    for text, i in zip(texts, source):
        assert len(text.split()) == len(prompts[i].split()) - 1
        assert all(w in prompts[i].split() for w in text.split())
    assert augment(prompts, 0, seed=0)[0] == []


def test_word_dropped_copies_train_the_classifiers_but_never_a_held_out_line(monkeypatch):
    """The full fit takes every copy; each out-of-fold fit takes the copies of its own lines only."""
    import ohlora.memory.topic_encoder as te

    sizes = []
    real = te._logistic

    def recording(x, targets, *args, **kw):
        sizes.append(x.shape[0])
        return real(x, targets, *args, **kw)

    monkeypatch.setattr(te, "_logistic", recording)
    n = len(LINES)
    for copies in (1, 0):  # 0, the default: a line's prompt and memory only, as before word dropout
        sizes.clear()
        monkeypatch.setattr(te, "WORD_DROP", copies)
        _fit(_rows())
        _, source = augment([p for _, p in LINES], copies, seed=0)
        assert sizes[0] == 2 * n + len(source)
        folds = sizes[1:]
        assert len(folds) == te.OOF_FOLDS
        # each line is held out once: over the folds, 2 rows per line and each copy (OOF_FOLDS - 1) times
        assert sum(folds) == (te.OOF_FOLDS - 1) * (2 * n + len(source))
    assert len(augment([p for _, p in LINES], 1, seed=0)[1]) > 0


def test_bag_uses_sublinear_tf_smoothed_idf_and_unit_rows():
    bag = _Bag.fit([["가", "가", "나"], ["나"]])
    assert bag.vocab == ["가", "나"]
    # idf = ln((1 + n) / (1 + df)) + 1 with n = 2 documents
    assert bag.idf.tolist() == pytest.approx([math.log(3 / 2) + 1, 1.0])
    row = bag.rows([["가", "가", "나", "모름"]]).toarray()[0]  # an unknown gram is ignored
    raw = np.array([(1 + math.log(2)) * (math.log(3 / 2) + 1), 1.0])
    assert row == pytest.approx(raw / np.linalg.norm(raw), abs=1e-6)


def test_soft_targets_give_the_key_most_and_share_the_rest_by_score():
    scores = np.array([[1.0, 0.6, 0.0], [0.6, 1.0, 0.2], [0.0, 0.2, 1.0]])
    t = soft_targets(np.array([0, 2, 1]), scores, 0.5)
    # key 0: half on itself, half spread as its score row [1, 0.6, 0] / 1.6
    assert t[0] == pytest.approx([0.5 + 0.5 / 1.6, 0.5 * 0.6 / 1.6, 0.0])
    assert t[1] == pytest.approx([0.0, 0.5 * 0.2 / 1.2, 0.5 + 0.5 / 1.2])
    assert t.sum(1) == pytest.approx(np.ones(3))
    # key 1 never occurs in y (a fold without it): its scores with keys 0 and 2 give it nothing
    assert soft_targets(np.array([0, 2]), scores, 0.5).tolist() == [[1, 0, 0], [0, 0, 1]]
    assert soft_targets(np.array([2, 0]), scores, 0.0).tolist() == [[0, 0, 1], [1, 0, 0]]


def test_logistic_reaches_the_optimum_of_its_objective():
    """At the minimum of C·Σ CE(q, softmax(xW + b)) + ½‖W‖² the gradient vanishes:
    W = C·xᵀ(q − p) and Σ(q − p) = 0 — checked on random sparse features and soft targets
    (this pins the loss and gradient formulae the solver is given)."""
    import torch
    from scipy.sparse import random as sparse_random

    import ohlora.memory.topic_encoder as te

    rng = np.random.default_rng(0)
    x = sparse_random(60, 40, density=0.2, format="csr", random_state=1, dtype=np.float32)
    y = rng.integers(0, 3, 60)
    q = soft_targets(y, np.array([[1.0, 0.5, 0.1], [0.5, 1.0, 0.3], [0.1, 0.3, 1.0]]), 0.6)
    coef, intercept = _logistic(x, q, gtol=1e-9)  # tighter than the default (scikit-learn's 1e-4)
    p = torch.softmax(torch.from_numpy(x.toarray() @ coef.T + intercept), -1).numpy()
    assert coef.T == pytest.approx(te.C * x.T.toarray() @ (q - p), abs=1e-3)
    assert (q - p).sum(0) == pytest.approx(np.zeros(3), abs=1e-3)


def test_a_row_weight_is_that_many_copies_of_the_row():
    """scikit-learn's sample_weight meaning: weight k = the row k times (same optimum)."""
    from scipy.sparse import random as sparse_random
    from scipy.sparse import vstack

    rng = np.random.default_rng(2)
    x = sparse_random(40, 30, density=0.25, format="csr", random_state=3, dtype=np.float32)
    q = soft_targets(rng.integers(0, 3, 40), np.array([[1.0, 0.5, 0.1], [0.5, 1.0, 0.3], [0.1, 0.3, 1.0]]), 0.6)
    k = rng.integers(1, 4, 40)
    rows = np.repeat(np.arange(40), k)
    weighted = _logistic(x, q, k.astype(float), gtol=1e-9)
    copied = _logistic(vstack([x[[i]] for i in rows], format="csr"), q[rows], gtol=1e-9)
    unweighted = _logistic(x, q, gtol=1e-9)
    for a, b in zip(weighted, copied):
        assert a == pytest.approx(b, abs=2e-3)
    assert not np.allclose(weighted[0], unweighted[0], atol=2e-2)  # the weights mattered


def test_a_heavier_line_decides_a_prompt_two_keys_share():
    """The same words under two keys: the line with the larger weight wins the prompt."""
    from ohlora.memory.lines import Lines
    from ohlora.memory.train import TrainArgs, train

    torn = [("[좋아하는 가수: 태연]", "오늘 완전 설렌다"), ("[오늘 날씨: 맑음]", "오늘 완전 설렌다")]
    lines = LINES + torn
    keys = [_key(m) for m, _ in lines]
    scores = {(a, b): _score(a, b) for a in set(keys) for b in set(keys)}
    got = {}
    for heavy in (0, 1):
        weights = [1.0] * len(LINES) + [8.0 if i == heavy else 1.0 for i in range(2)]
        data = Lines(lines, keys=keys, key_scores=scores, weights=weights)
        enc = train(None, None, base="topic", args=TrainArgs(valid_ratio=0.0), lines=data, progress=False).model[0]
        got[heavy] = enc.predict_keys(["오늘 완전 설렌다"])[0][0]
    assert got == {0: "좋아하는 가수", 1: "오늘 날씨"}
    with pytest.raises(OhloraError, match="positive numbers, one per line"):
        train(None, None, base="topic", args=TrainArgs(valid_ratio=0.0), progress=False,
              lines=Lines(lines, keys=keys, key_scores=scores, weights=[1.0] * (len(lines) - 1) + [0.0]))


def test_a_class_without_target_mass_gets_no_probability():
    from scipy.sparse import csr_matrix

    x = csr_matrix(np.eye(4, dtype=np.float32))
    q = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0]], dtype=np.float32)  # class 2 absent
    coef, intercept = _logistic(x, q)
    assert not coef[2].any() and intercept[2] <= -1e3
    logits = x.toarray() @ coef.T + intercept
    assert (logits.argmax(1) == [0, 0, 1, 1]).all()


def test_soft_targets_make_close_keys_likelier_than_far_ones(fitted):
    """Fitted on the same features, a 가수 prompt's posterior leans to 공연 (score 0.7) over
    날씨 (0.1) more with soft targets than with one-hot ones."""
    import torch

    enc = fitted.model[0]
    texts = [t for m, p in LINES for t in (p, m)]
    y = np.repeat([enc.keys.index(_key(m)) for m, _ in LINES], 2)
    s = np.eye(3)
    for (a, b), v in SCORES.items():
        s[enc.keys.index(a), enc.keys.index(b)] = s[enc.keys.index(b), enc.keys.index(a)] = v
    x = enc.featurize(texts)
    probe = enc.featurize(["새로 나온 노래 들어봤어?"]).toarray()
    ratio = {}
    for alpha in (0.0, 0.6):
        coef, intercept = _logistic(x, soft_targets(y, s, alpha))
        p = torch.softmax(torch.from_numpy(probe @ coef.T + intercept), -1).numpy()[0]
        ratio[alpha] = p[enc.keys.index("공연 보고 싶음")] / p[enc.keys.index("오늘 날씨")]
    assert ratio[0.6] > ratio[0.0]


def test_fit_learns_the_keys_and_reads_unseen_prompts(fitted):
    enc = fitted.model[0]
    assert enc.keys == sorted({_key(m) for m, _ in LINES})
    got = enc.predict_keys(["내일 비 온대 우산 있어?", "새로 나온 노래 들어봤어?", "[오늘 날씨: 눈]"])
    assert [k for k, _ in got] == ["오늘 날씨", "좋아하는 가수", "오늘 날씨"]
    assert all(0.0 < p <= 1.0 for _, p in got)


def test_cosines_follow_the_key_pair_scores(fitted):
    """Same key > close keys (0.7) > far keys (0.1) between memories and new prompts."""
    mems = ["[좋아하는 가수: 아이유]", "[공연 보고 싶음: 콘서트]", "[오늘 날씨: 비]"]
    z = fitted.model.encode(mems + ["노래 하나만 추천해 줘"], normalize_embeddings=True)
    cos = z[:3] @ z[3]
    assert cos[0] > cos[1] > cos[2]
    # training lines: cosines near their scores (a fit, not a lookup: within 0.2)
    texts = [m for m, _ in LINES] + [p for _, p in LINES]
    z = fitted.model.encode(texts, normalize_embeddings=True)
    n = len(LINES)
    err = [abs(float(z[i] @ z[n + j]) - _score(_key(LINES[i][0]), _key(LINES[j][0]))) for i in range(n) for j in range(n)]
    assert np.mean(err) < 0.2


def test_save_and_load_give_the_same_vectors(fitted, tmp_path):
    from ohlora.models import load_sentence_encoder

    fitted.model.save(str(tmp_path))
    assert json.loads((tmp_path / "modules.json").read_text())[0]["type"] == "ohlora.memory.topic_encoder.TopicEncoder"
    texts = ["[오늘 일정: 면접] 아 떨린다", "로라야 노래 추천해 줘~", "ㅋㅋㅋ 🍕", ""]
    again = load_sentence_encoder(str(tmp_path), flag="MODEL_DIR")
    assert np.allclose(again.encode(texts), fitted.model.encode(texts), atol=1e-5)


def test_key_match_is_one_for_a_prompt_holding_the_whole_key_and_zero_for_memories():
    """The key-match view: per key, each of its content morphemes' best cosine with the text's,
    averaged. A prompt with every morpheme of a key scores exactly 1 for it, one with half of
    them less (the missing one's best match is another word) but more than a key it shares
    nothing with; memories get no key-match column at all (zeros)."""
    from ohlora.memory.topic_encoder import TopicEncoder

    enc = TopicEncoder(keys=["오늘 날씨", "좋아하는 가수"], key_match=1.0)
    texts = ["오늘 날씨 진짜 좋다", "날씨 어때?", "[오늘 날씨: 맑음]", "\u200b오늘 날씨 🌧️"]
    got = enc._match_keys(texts, enc._analyse(texts))
    weather, singer = 0, 1
    assert got[0, weather] == pytest.approx(1.0, abs=1e-5)
    assert got[1, singer] < got[1, weather] < 1.0 - 1e-3
    assert (got[2] == 0).all()
    assert got[3, weather] == pytest.approx(1.0, abs=1e-5)  # zero-width space and emoji change nothing


def test_a_folder_saved_before_the_key_match_view_loads_as_it_was(tmp_path, monkeypatch):
    """Saved topic folders without `key_match` in their config (older versions) have no such
    columns in their classifier: they load with the view off and give the vectors they gave."""
    import ohlora.memory.topic_encoder as te
    from ohlora.models import load_sentence_encoder

    monkeypatch.setattr(te, "KEY_MATCH", 0.0)
    old = _fit(_rows()).model
    old.save(str(tmp_path))
    _drop_config_entry(tmp_path, "key_match")
    texts = ["[오늘 일정: 면접] 아 떨린다", "로라야 노래 추천해 줘~", "비 온대"]
    again = load_sentence_encoder(str(tmp_path), flag="MODEL_DIR")
    assert again[0].key_match == 0.0
    assert np.allclose(again.encode(texts), old.encode(texts), atol=1e-5)


def test_a_fit_puts_runs_of_forms_in_the_vocabulary_and_records_their_length(fitted, tmp_path):
    from ohlora.memory import topic_encoder as te

    enc = fitted.model[0]
    assert enc.morph_ngrams == te.MORPH_NGRAMS == 2
    runs = [g for g in enc.morph.vocab if " " in g]
    assert runs and all(len(g.split(" ")) == 2 for g in runs)
    fitted.model.save(str(tmp_path))
    assert json.loads((tmp_path / "topic_config.json").read_text(encoding="utf-8"))["morph_ngrams"] == 2


def test_a_folder_saved_before_runs_of_forms_loads_as_it_was(tmp_path, monkeypatch):
    """A folder from before `morph_ngrams` (single forms only, no such config entry) loads with
    runs off and gives exactly the vectors it gave when it was fitted."""
    import ohlora.memory.topic_encoder as te
    from ohlora.models import load_sentence_encoder

    monkeypatch.setattr(te, "MORPH_NGRAMS", 1)
    old = _fit(_rows()).model
    assert not any(" " in g for g in old[0].morph.vocab)
    texts = ["[오늘 일정: 면접] 아 떨린다", "로라야 노래 추천해 줘~", "비 온대 ☔"]
    before = old.encode(texts)
    old.save(str(tmp_path))
    monkeypatch.undo()
    _drop_config_entry(tmp_path, "morph_ngrams")
    again = load_sentence_encoder(str(tmp_path), flag="MODEL_DIR")
    assert again[0].morph_ngrams == 1
    assert np.allclose(again.encode(texts), before, atol=1e-5)


def test_with_key_match_on_a_fit_saves_and_loads_it(tmp_path, monkeypatch):
    """`KEY_MATCH` (off by default) adds one classifier column per key; a folder fitted with it
    records it and loads to the same vectors, and a prompt holding a key's words leans to it."""
    import ohlora.memory.topic_encoder as te
    from ohlora.models import load_sentence_encoder

    monkeypatch.setattr(te, "KEY_MATCH", 3.0)
    model = _fit(_rows()).model
    enc = model[0]
    assert enc.classifier.weight.shape[1] == len(enc.char.vocab) + len(enc.morph.vocab) + enc.vectors.dim + len(enc.keys)
    model.save(str(tmp_path))
    assert json.loads((tmp_path / "topic_config.json").read_text(encoding="utf-8"))["key_match"] == 3.0
    texts = ["[오늘 날씨: 눈] 춥다", "좋아하는 가수 있어?", "날씨 어때 🌧️"]
    again = load_sentence_encoder(str(tmp_path), flag="MODEL_DIR")
    assert np.allclose(again.encode(texts), model.encode(texts), atol=1e-5)
    assert [k for k, _ in enc.predict_keys(texts[1:])] == ["좋아하는 가수", "오늘 날씨"]


def test_untrained_topic_encoder_says_how_to_train_it():
    from ohlora.models import load_sentence_encoder

    with pytest.raises(OhloraError, match="--base topic"):
        load_sentence_encoder("topic").encode(["안녕"])


def test_fit_needs_whole_lines_and_two_keys():
    three_columns = [Pair(r.memory, r.prompt, r.score) for r in _rows()]
    with pytest.raises(OhloraError, match="five columns"):
        _fit(three_columns)
    one_key = [ln for ln in LINES if _key(ln[0]) == "오늘 날씨"]
    with pytest.raises(OhloraError, match="at least 2 different keys"):
        _fit(_rows(one_key))


def test_cli_trains_a_topic_encoder_that_pick_uses(tmp_path, capsys):
    from ohlora.cli import main
    from ohlora.memory.pairs import write_pairs

    pairs = tmp_path / "pairs.csv"
    write_pairs([(r.memory, r.prompt_0, r.memory_1, r.prompt, r.score) for r in _rows()], pairs)
    out = tmp_path / "topic"
    assert main(["memory", "train", str(pairs), "--base", "topic", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "topic" in said and "3 keys" in said and "epochs" not in said
    memory = tmp_path / "memory.txt"
    memory.write_text("[오늘 날씨: 비]\n[좋아하는 가수: 아이유]\n", encoding="utf-8")
    assert main(["memory", "pick", str(out), "--memory-file", str(memory), "--threshold", "0.5", "비 와서 우산 사야 해"]) == 0
    assert capsys.readouterr().out.strip() == "[오늘 날씨: 비]"


def test_memory_prompt_cosine_is_the_expected_key_score():
    """embed(): unit vectors whose memory·prompt cosine is pₘᵀ Ê Êᵀ pₚ, however unsure the posteriors."""
    import torch

    from ohlora.memory.topic_encoder import embed

    gen = torch.Generator().manual_seed(0)
    table = torch.randn(5, 5, generator=gen)
    post = torch.softmax(torch.randn(6, 5, generator=gen) * torch.tensor([[0.1], [1], [3], [10], [0.5], [2]]), dim=-1)
    is_memory = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    z = embed(post, table, is_memory)
    assert torch.allclose(z.norm(dim=-1), torch.ones(6), atol=1e-6)
    unit = table / table.norm(dim=-1, keepdim=True)
    expected = post[:3] @ unit @ unit.T @ post[3:].T
    assert torch.allclose(z[:3] @ z[3:].T, expected, atol=1e-6)


def test_mixed_with_kiwi_the_cosine_is_the_weighted_mean(fitted, tmp_path):
    """`ohlora memory mix TOPIC KIWI`: the topic part still knows memories from prompts inside the mix."""
    from ohlora.cli import main
    from ohlora.models import load_sentence_encoder

    fitted.model.save(str(tmp_path / "topic"))
    load_sentence_encoder("kiwi").save(str(tmp_path / "kiwi"))
    assert main(["memory", "mix", str(tmp_path / "topic"), str(tmp_path / "kiwi"), "--weights", "3,1", "--out", str(tmp_path / "mix")]) == 0
    mems, prompts = ["[오늘 날씨: 비]", "[좋아하는 가수: 아이유]"], ["우산 어디 뒀더라 ☔", "신곡 들어봤어?"]

    def cos(model):
        z = model.encode(mems + prompts, normalize_embeddings=True)
        return z[:2] @ z[2:].T

    mixed = load_sentence_encoder(str(tmp_path / "mix"), flag="MODEL_DIR")
    expected = 0.75 * cos(fitted.model) + 0.25 * cos(load_sentence_encoder(str(tmp_path / "kiwi")))
    assert np.allclose(cos(mixed), expected, atol=1e-5)


def test_a_model_folder_named_like_a_builtin_encoder_is_the_folder(fitted, tmp_path, monkeypatch):
    """After `train ... --out topic`, `eval topic ...` means that folder, not a fresh encoder;
    `--base topic` still means a fresh one."""
    from ohlora.models import load_sentence_encoder

    for name in ("topic", "bundled"):
        fitted.model.save(str(tmp_path / name))
    monkeypatch.chdir(tmp_path)
    assert load_sentence_encoder("topic", flag="MODEL_DIR")[0].keys == fitted.model[0].keys
    assert load_sentence_encoder("bundled", flag="MODEL_DIR")[0].keys == fitted.model[0].keys
    assert load_sentence_encoder("topic", flag="--base")[0].keys == []


def test_new_keys_change_only_memories_of_untrained_keys(fitted, monkeypatch, tmp_path):
    """`NEW_KEYS`: a memory whose key the fit never saw is placed from its key string (its
    predicted score row); prompts and memories of trained keys keep exactly their vectors, every
    vector stays unit length, and the folder records it and loads to the same vectors."""
    import ohlora.memory.topic_encoder as te
    from ohlora.models import load_sentence_encoder

    on = fitted.model
    assert te.NEW_KEYS is True and on[0].new_keys  # the default since session 11
    monkeypatch.setattr(te, "NEW_KEYS", False)
    off = _fit(_rows()).model
    known = ["[좋아하는 가수: 아이유]", "[오늘 날씨: 비]", "노래 추천해 줘", "비 온대 우산 있어? ☔", "\u200b콘서트 가고 싶다"]
    assert np.allclose(on.encode(known), off.encode(known), atol=1e-6)
    new = ["[좋아하는 음악가: 아이유]", "[내일 날씨: 눈]"]
    z_on, z_off = on.encode(new, normalize_embeddings=False), off.encode(new, normalize_embeddings=False)
    assert not np.allclose(z_on, z_off, atol=1e-3)
    assert np.allclose(np.linalg.norm(z_on, axis=1), 1.0, atol=1e-5)
    prompts = on.encode(["노래 추천해 줘", "비 온대 우산 있어? ☔"])
    cos = z_on @ prompts.T
    assert cos[0, 0] > cos[0, 1] and cos[1, 1] > cos[1, 0]  # the musician memory meets the song prompt, snow the rain one
    on.save(str(tmp_path))
    assert json.loads((tmp_path / "topic_config.json").read_text(encoding="utf-8"))["new_keys"] is True
    again = load_sentence_encoder(str(tmp_path), flag="MODEL_DIR")
    assert np.allclose(again.encode(new + known), on.encode(new + known), atol=1e-5)


def test_a_new_key_memory_meets_a_prompt_at_its_row_averaged_over_the_prompt(fitted):
    """The cosine of an untrained key's memory and a prompt is its predicted row averaged over
    the prompt's key posterior, wherever the table can hold that row."""
    import torch

    import ohlora.memory.topic_encoder as te

    enc = fitted.model[0]
    memory, prompt = "[좋아하는 음악가: 아이유]", "공연 보러 가고 싶어"
    row = enc.key_rows.rows([_key(memory)])[0]
    e = torch.nn.functional.normalize(enc.table.detach(), dim=-1).numpy()
    v = te.row_vectors(row[None], e)[0]
    with torch.no_grad():
        p = enc.posterior(enc._dense([prompt]))[0].numpy()
        z = enc(enc.preprocess([memory, prompt]))["sentence_embedding"].numpy()
    assert float(z[0] @ z[1]) == pytest.approx(float(p @ e @ v), abs=1e-5)
    if np.linalg.norm(v) < 1 - 1e-4:  # the row fits inside the unit ball: met exactly
        assert float(z[0] @ z[1]) == pytest.approx(float(p @ row), abs=1e-4)


def test_a_folder_saved_before_new_keys_loads_as_it_was(tmp_path, monkeypatch):
    """A folder from before `new_keys` (no such config entry, no such weights) loads with it off
    and gives exactly the vectors it gave, an untrained key's memory included."""
    import ohlora.memory.topic_encoder as te
    from ohlora.models import load_sentence_encoder

    monkeypatch.setattr(te, "NEW_KEYS", False)
    old = _fit(_rows()).model
    texts = ["[좋아하는 음악가: 아이유]", "노래 추천해 줘"]
    before = old.encode(texts)
    old.save(str(tmp_path))
    monkeypatch.undo()
    _drop_config_entry(tmp_path, "new_keys")
    again = load_sentence_encoder(str(tmp_path), flag="MODEL_DIR")
    assert again[0].new_keys is False and again[0].key_rows is None
    assert np.allclose(again.encode(texts), before, atol=1e-5)


def test_odd_keys_of_memories_give_unit_vectors_and_a_hidden_space_is_no_new_key(fitted):
    """Keys Kiwi has no vector for (emoji, bare jamo) still give finite unit vectors; a key that
    is a trained one behind a zero-width space or its alias is read as that trained key."""
    odd = ["[🎮: 롤]", "[ㅋㅋ: ㅎㅎ]", "[상태: 배고픔 😋]"]
    z = fitted.model.encode(odd, normalize_embeddings=False)
    assert np.isfinite(z).all() and np.allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    same = fitted.model.encode(["[좋아하는\u200b 가수: 아이유]", "[좋아하는 아이돌: 아이유]", "[좋아하는 가수: 아이유]"])
    assert np.allclose(same[0], same[2], atol=1e-5)
    assert float(same[1] @ same[2]) > 0.95  # the alias names a trained key: the classifier reads it, no new key


def test_temperature_scale_multiplies_the_fitted_temperature_and_nothing_else(fitted, monkeypatch, tmp_path):
    """`TEMPERATURE_SCALE`: the same fit, its posterior temperature × the scale — so every
    posterior is flatter (a sure prompt a little less sure), the classifier and key table are
    untouched, and the folder keeps it without a new config entry."""
    import torch

    import ohlora.memory.topic_encoder as te
    from ohlora.models import load_sentence_encoder

    assert te.TEMPERATURE_SCALE == 1.0  # the default: the fit's own temperature (×1.5 fell on the test, session 12)
    one = fitted.model
    monkeypatch.setattr(te, "TEMPERATURE_SCALE", 2.0)
    two = _fit(_rows()).model
    a, b = one[0], two[0]
    assert torch.equal(a.classifier.weight, b.classifier.weight) and torch.equal(a.table, b.table)
    assert float((b.log_temperature - a.log_temperature).detach()) == pytest.approx(math.log(2.0), abs=1e-6)
    texts = ["로라야 노래 추천해 줘", "우산 챙겨야 하나?", "[오늘 날씨: 비]"]
    pa, pb = a.posterior(a._dense(texts)), b.posterior(b._dense(texts))
    assert torch.all(pb.max(-1).values < pa.max(-1).values)  # flatter, same argmax
    assert torch.equal(pa.argmax(-1), pb.argmax(-1))
    logits = a.classifier(a._dense(texts))
    assert torch.allclose(pb, torch.softmax(logits / (2.0 * a.log_temperature.exp()), -1), atol=1e-6)
    two.save(str(tmp_path))
    config = json.loads((tmp_path / "topic_config.json").read_text(encoding="utf-8"))
    assert "temperature_scale" not in config
    again = load_sentence_encoder(str(tmp_path), flag="MODEL_DIR")
    assert np.allclose(again.encode(texts), two.encode(texts), atol=1e-6)


def test_prior_shift_divides_each_posterior_by_its_keys_share_of_the_training_lines(monkeypatch):
    """`PRIOR_SHIFT` = 1 (label shift toward equal keys): the same fit, but every posterior is
    p(k|x) / π(k) renormalised, π(k) being key k's share of the training lines — counted here
    from the lines, not taken from the encoder; the classifier's weights, the key table and
    the temperature are untouched."""
    import torch

    import ohlora.memory.topic_encoder as te

    assert te.PRIOR_SHIFT == 0.0  # the default: the training mix's prior (1 fell on the test, session 13)
    lines = LINES[:7] + LINES[8:10]  # unequal keys: 가수 4 lines, 날씨 3, 공연 2
    off = _fit(_rows(lines)).model[0]
    monkeypatch.setattr(te, "PRIOR_SHIFT", 1.0)
    on = _fit(_rows(lines)).model[0]
    assert torch.equal(off.classifier.weight, on.classifier.weight) and torch.equal(off.table, on.table)
    assert torch.equal(off.log_temperature, on.log_temperature)
    share = torch.tensor([sum(_key(m) == k for m, _ in lines) / len(lines) for k in off.keys], dtype=torch.float64)
    assert sorted(share.tolist()) == pytest.approx([2 / 9, 3 / 9, 4 / 9])
    texts = ["로라야 노래 추천해 줘", "우산\u200b 챙겨야 하나? ☔", "콘서트 가고 싶다 🎤", "음"]
    p0, p1 = (m.posterior(m._dense(texts)).double() for m in (off, on))
    expected = p0 / share
    assert torch.allclose(p1, expected / expected.sum(-1, keepdim=True), atol=1e-5)
    assert not torch.allclose(p0, p1, atol=1e-3)  # the shift moved them
