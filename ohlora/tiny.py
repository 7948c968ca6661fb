"""Tiny models built from a config, with tokenizers trained on our own text.

These are the offline stand-ins (and the test models): a small GPT-NeoX — the same
architecture family as polyglot-ko-1.3b — a small RoBERTa shaped like klue/roberta-base
(its config fields, special-token order and tokenizer class), and a small plain BERT.
They go through exactly the code paths of the real models (they are saved as ordinary
Hugging Face folders and loaded by `ohlora.models`); only the config differs.

    >>> from ohlora.tiny import train_bpe_tokenizer, build_causal_lm
    >>> tok = train_bpe_tokenizer(["오늘 날씨 어때? 😀", "로라야 안녕"], vocab_size=400)
    >>> tok.decode(tok("안녕 🫠")["input_ids"]) == "안녕 🫠"
    True
    >>> model = build_causal_lm(tok, hidden_size=32, num_layers=1)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ohlora.formats import ANSWER_END, ANSWER_HEADER, ANSWER_START, EOS

# Fixed strings the heads must read and write; seeding them in the training text makes
# BPE merge them into few tokens, as a large pre-trained vocabulary would.
_FORMAT_TEXT = [f"{ANSWER_START} {ANSWER_HEADER} {ANSWER_END} {EOS}"] * 20


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 4000):
    """Byte-level BPE: every string — rare syllables, emoji, zero-width — encodes
    without an unknown token and decodes back unchanged (byte fallback by construction).
    `<|endoftext|>` is the one special token, used as EOS and padding, like polyglot-ko."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: no unknowns
        min_frequency=2,
        show_progress=False,
    )
    tok.train_from_iterator([*texts, *_FORMAT_TEXT], trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS,
        bos_token=EOS,
        pad_token=EOS,
        unk_token=None,
        clean_up_tokenization_spaces=False,  # decode must give back exactly what was encoded
        model_max_length=512,
    )


def build_causal_lm(tokenizer, hidden_size: int = 128, num_layers: int = 4, num_heads: int = 4, max_positions: int = 512, seed: int = 0):
    """A GPT-NeoX with random weights, sized by the arguments (polyglot-ko: 2048, 24, 16)."""
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    cfg = GPTNeoXConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=4 * hidden_size,
        max_position_embeddings=max_positions,
        rotary_pct=0.5,  # polyglot-ko-1.3b's value
        use_parallel_residual=True,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return GPTNeoXForCausalLM(cfg)


def _wordpiece(texts: Iterable[str], vocab_size: int, specials: list[str], normalizer):
    """A WordPiece model trained on `texts` through `normalizer`, its `specials` first
    (ids 0, 1, ...), with BERT's `[CLS] A [SEP]` template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(list(texts), trainer=trainer)
    tok.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    return tok


_SPECIALS = dict(unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def train_wordpiece_tokenizer(texts: Iterable[str], vocab_size: int = 2000):
    """A BERT WordPiece tokenizer on our text, NFC-normalising by itself (a plain BERT folder)."""
    from tokenizers import normalizers
    from transformers import PreTrainedTokenizerFast

    tok = _wordpiece(texts, vocab_size, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], normalizers.NFC())
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=128, **_SPECIALS)


# klue/roberta-base's special tokens, in its vocabulary's order: [CLS] 0 is also its bos,
# [PAD] 1 its pad (RoBERTa's padding index), [SEP] 2 its eos.
KLUE_SPECIALS = ["[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]"]


def train_klue_tokenizer(texts: Iterable[str], vocab_size: int = 2000, max_length: int = 128):
    """klue/roberta-base's tokenizer in miniature: WordPiece saved as a `BertTokenizer`, the
    special tokens in klue's order, no lower-casing — and, like klue's, no Unicode
    normalisation of its own (BERT's normaliser only drops control characters and spaces
    out CJK ideographs), so decomposed Hangul reaches it as unknown pieces unless the
    caller NFC-normalises first (`ohlora.formats.normalize`; the memory code does)."""
    from tokenizers import normalizers
    from transformers import BertTokenizerFast

    bert = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=False)
    tok = _wordpiece(texts, vocab_size, KLUE_SPECIALS, bert)
    return BertTokenizerFast(tokenizer_object=tok, do_lower_case=False, model_max_length=max_length, **_SPECIALS)


@dataclass
class TinyBertSize:
    hidden_size: int = field(default=64, metadata={"help": "klue/roberta-base: 768"})
    num_layers: int = field(default=2, metadata={"help": "klue/roberta-base: 12"})
    num_heads: int = field(default=4, metadata={"help": "klue/roberta-base: 12"})


def build_bert(tokenizer, size: TinyBertSize | None = None, seed: int = 0):
    """A BERT encoder with random weights (the memory encoder's stand-in in tests)."""
    import torch
    from transformers import BertConfig, BertModel

    size = size or TinyBertSize()
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden_size,
        num_hidden_layers=size.num_layers,
        num_attention_heads=size.num_heads,
        intermediate_size=4 * size.hidden_size,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
    )
    return BertModel(cfg)


def build_roberta(tokenizer, size: TinyBertSize | None = None, seed: int = 0, vocab_size: int | None = None):
    """A RoBERTa masked LM with random weights, shaped like klue/roberta-base (SPEC §4's
    encoder) but for its sizes: one token type, RoBERTa's positions counted from after the
    pad index (klue: 514 positions for 512 tokens), bos/pad/eos from the tokenizer. Saved as
    `RobertaForMaskedLM`, as klue's checkpoint is, so loading it as an encoder drops the LM
    head exactly as loading the real one does. `vocab_size` (≥ the tokenizer's) sizes the
    embedding like a real vocabulary's (klue: 32000) when a benchmark needs its cost."""
    import torch
    from transformers import RobertaConfig, RobertaForMaskedLM

    size = size or TinyBertSize()
    torch.manual_seed(seed)
    cfg = RobertaConfig(
        vocab_size=max(vocab_size or 0, len(tokenizer)),
        hidden_size=size.hidden_size,
        num_hidden_layers=size.num_layers,
        num_attention_heads=size.num_heads,
        intermediate_size=4 * size.hidden_size,
        max_position_embeddings=tokenizer.model_max_length + tokenizer.pad_token_id + 1,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        tokenizer_class="BertTokenizer",
    )
    return RobertaForMaskedLM(cfg)


def save_tiny_roberta(folder, texts: Iterable[str], size: TinyBertSize | None = None, vocab_size: int = 2000,
                      model_vocab_size: int | None = None) -> str:
    """Build a klue-shaped tiny RoBERTa + its tokenizer (`build_roberta`,
    `train_klue_tokenizer`) and save them as a plain HF folder: the memory encoder's
    stand-in for `klue/roberta-base` (at klue's own sizes with `size=TinyBertSize(768, 12,
    12), model_vocab_size=32000`: benchmarks/memory_train_klue.py)."""
    tok = train_klue_tokenizer(texts, vocab_size)
    model = build_roberta(tok, size, vocab_size=model_vocab_size)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def save_tiny_bert(folder, texts: Iterable[str], size: TinyBertSize | None = None, vocab_size: int = 2000) -> str:
    """Build a tiny BERT + WordPiece tokenizer and save it as a plain HF folder."""
    texts = list(texts)
    tok = train_wordpiece_tokenizer(texts, vocab_size)
    model = build_bert(tok, size)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def save_tiny_causal_lm(folder, texts: Iterable[str], vocab_size: int = 4000, **size) -> str:
    """Build a tiny GPT-NeoX + byte-level BPE tokenizer and save it as a plain HF folder."""
    tok = train_bpe_tokenizer(texts, vocab_size)
    model = build_causal_lm(tok, **size)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)
