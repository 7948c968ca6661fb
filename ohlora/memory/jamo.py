"""Letting an English WordPiece vocabulary read Korean: fill its missing Hangul jamo.

all-MiniLM-L6-v2 (the `bundled` encoder) has an uncased BERT tokenizer: it NFD-
decomposes every Hangul syllable into jamo, and its vocabulary holds most jamo but not
all — no ㄲ ㄸ ㅃ ㅉ initials, no ㅑ ㅒ ㅖ ㅙ ㅚ ㅞ ㅟ vowels, and few finals (ㅅ ㅆ ㅎ ...).
WordPiece then turns any word holding one of them into a single [UNK]: '약속', '좋아',
'있어', '어때' all vanish (about a third of the words of the reference pairs).

`fill_missing_jamo` appends Replace rules to the tokenizer's normalizer (after its
NFD step) that spell each missing jamo with jamo the vocabulary has — ㅑ as ㅣ+ㅏ, ㄲ
as ㄱ+ㄱ, a final ㅆ as ㅅ+ㅅ (initial forms stand in for missing finals). The rule is
stored in tokenizer.json, so a model saved after training reads Korean the same way
wherever it is loaded. Tokenizers that already have every jamo (or never decompose)
are left as they are.

    >>> from ohlora.memory.jamo import SPELLINGS
    >>> SPELLINGS["\u1163"]   # ㅑ -> ㅣ ㅏ
    '\u1175\u1161'
"""

from __future__ import annotations

# Initials (U+1100..), medial vowels (U+1161..), finals (U+11A8..) -> simpler jamo.
_I = {c: chr(0x1100 + i) for i, c in enumerate("ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ")}
SPELLINGS: dict[str, str] = {
    # double initials
    "\u1101": _I["ㄱ"] * 2, "\u1104": _I["ㄷ"] * 2, "\u1108": _I["ㅂ"] * 2, "\u110a": _I["ㅅ"] * 2, "\u110d": _I["ㅈ"] * 2,
    # vowels: y- and w- diphthongs as ㅣ/ㅗ/ㅜ + vowel
    "\u1163": "\u1175\u1161", "\u1164": "\u1175\u1162", "\u1167": "\u1175\u1165", "\u1168": "\u1175\u1166",
    "\u116d": "\u1175\u1169", "\u1172": "\u1175\u116e", "\u116a": "\u1169\u1161", "\u116b": "\u1169\u1162",
    "\u116c": "\u1169\u1175", "\u116f": "\u116e\u1165", "\u1170": "\u116e\u1166", "\u1171": "\u116e\u1175",
    "\u1174": "\u1173\u1175",
    # finals -> initial consonant(s)
    "\u11a8": _I["ㄱ"], "\u11a9": _I["ㄱ"] * 2, "\u11aa": _I["ㄱ"] + _I["ㅅ"], "\u11ab": _I["ㄴ"],
    "\u11ac": _I["ㄴ"] + _I["ㅈ"], "\u11ad": _I["ㄴ"] + _I["ㅎ"], "\u11ae": _I["ㄷ"], "\u11af": _I["ㄹ"],
    "\u11b0": _I["ㄹ"] + _I["ㄱ"], "\u11b1": _I["ㄹ"] + _I["ㅁ"], "\u11b2": _I["ㄹ"] + _I["ㅂ"],
    "\u11b3": _I["ㄹ"] + _I["ㅅ"], "\u11b4": _I["ㄹ"] + _I["ㅌ"], "\u11b5": _I["ㄹ"] + _I["ㅍ"],
    "\u11b6": _I["ㄹ"] + _I["ㅎ"], "\u11b7": _I["ㅁ"], "\u11b8": _I["ㅂ"], "\u11b9": _I["ㅂ"] + _I["ㅅ"],
    "\u11ba": _I["ㅅ"], "\u11bb": _I["ㅅ"] * 2, "\u11bc": _I["ㅇ"], "\u11bd": _I["ㅈ"], "\u11be": _I["ㅊ"],
    "\u11bf": _I["ㅋ"], "\u11c0": _I["ㅌ"], "\u11c1": _I["ㅍ"], "\u11c2": _I["ㅎ"],
}


def _known(vocab: dict, ch: str) -> bool:
    return ch in vocab or f"##{ch}" in vocab


def missing_jamo(tokenizer) -> list[str]:
    """Jamo the tokenizer would produce (it decomposes Hangul) but cannot spell."""
    pieces = tokenizer.backend_tokenizer.normalizer.normalize_str("각") if tokenizer.backend_tokenizer.normalizer else "각"
    if pieces == "각":  # composed syllables survive normalisation: nothing to fill
        return []
    vocab = tokenizer.get_vocab()
    return [c for c in SPELLINGS if not _known(vocab, c)]


def fill_missing_jamo(model) -> int:
    """Patch a SentenceTransformer's fast tokenizer in place; returns how many jamo
    got a spelling (0: nothing to do)."""
    from tokenizers import normalizers

    tok = model.tokenizer
    missing = missing_jamo(tok)
    vocab = tok.get_vocab()
    rules = []
    for c in missing:
        spelled = SPELLINGS[c]
        # Only when every part is spellable, else the [UNK] stays (better than garbage).
        if all(_known(vocab, p) for p in spelled):
            rules.append(normalizers.Replace(c, spelled))
    if not rules:
        return 0
    backend = tok.backend_tokenizer
    current = backend.normalizer
    backend.normalizer = normalizers.Sequence(([current] if current is not None else []) + rules)
    return len(rules)


def persist(folder) -> None:
    """Make a saved folder load the patched tokenizer.json verbatim.

    transformers rebuilds a BertTokenizer's normalizer from its config (dropping our
    rules); the generic fast tokenizer class takes tokenizer.json as written.
    """
    import json
    from pathlib import Path

    path = Path(folder) / "tokenizer_config.json"
    cfg = json.loads(path.read_text(encoding="utf-8"))
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(cfg, ensure_ascii=False, indent=2), encoding="utf-8")
