"""Constrained decoding: the memory and expression heads cannot write a malformed answer.

The reference sampled and re-sampled until an output parsed (memory up to 5 tries,
expression 3, then defaults; SPEC §2). Here each structured row of a batch carries a
constraint that masks, at every step, the tokens that would make the output invalid:

* memory head: nothing, or exactly one `[key: value]`, then `(답변 종료)`. A byte-level
  state machine (keys without `[]:`, values without `[]` and without a colon followed by
  white space (`7:30` yes, `일정: 날씨` no: formats.parse_memory), valid UTF-8, no invisible
  characters, lengths capped) that also knows the token budget: a token is allowed only
  if the answer can still be closed within the head's cap, so a row never runs out of
  tokens half-way through an item.
* expression head: exactly one of the 4x3x3 label strings of SPEC §1.7, then
  `(답변 종료)`: a trie over the token ids of the 36 tokenized completions.

Both work on any tokenizer whose tokens map to bytes (byte-level BPE like polyglot-ko's
and our tiny one; `<0xNN>` byte-fallback pieces; otherwise the decoded text). Token
tables are computed once per tokenizer and cached; a step costs one vectorised mask for
the common case (a plain token inside a key or value) plus a Python pass over a few
candidate tokens at the boundaries.

    >>> from ohlora.heads.constraints import ConstraintLogits, expression_constraint  # doctest: +SKIP
    >>> rows = [None, expression_constraint(tokenizer).start(cap=32)]                  # doctest: +SKIP
    >>> model.generate(..., logits_processor=[ConstraintLogits(rows, prompt_width)])   # doctest: +SKIP
"""

from __future__ import annotations

import functools
import itertools
import json
import threading
import unicodedata
import weakref
from dataclasses import dataclass

import numpy as np
import torch
from transformers import LogitsProcessor

from ohlora import formats

_INF = 10**6  # "cannot finish"

# --- token -> bytes ----------------------------------------------------------------------


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte <-> printable-character table, used by every byte-level BPE."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def token_bytes(tokenizer) -> list[bytes | None]:
    """The bytes each token id stands for; None for special tokens (and pieces with no
    byte meaning). Index = token id, length = len(tokenizer)."""
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    decoder = {}
    if backend is not None:
        try:
            decoder = json.loads(backend.to_str()).get("decoder") or {}
        except Exception:
            decoder = {}
    kinds = {decoder.get("type")} | {d.get("type") for d in decoder.get("decoders", []) or []}
    special = set(tokenizer.all_special_ids)
    added = {i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if getattr(t, "special", False)}
    special |= added
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    out: list[bytes | None] = []
    if "ByteLevel" in kinds:
        inv = {c: b for b, c in _bytes_to_unicode().items()}
        for i, p in enumerate(pieces):
            if i in special or p is None or any(ch not in inv for ch in p):
                out.append(None)
            else:
                out.append(bytes(inv[ch] for ch in p))
        return out
    for i, p in enumerate(pieces):
        if i in special or p is None:
            out.append(None)
        elif len(p) == 6 and p.startswith("<0x") and p.endswith(">"):  # sentencepiece byte fallback
            out.append(bytes([int(p[3:5], 16)]))
        else:
            text = p.replace("\u2581", " ") if "Metaspace" in kinds else tokenizer.decode([i])
            out.append(None if "\ufffd" in text else text.encode("utf-8"))
    return out


# --- UTF-8 helpers -----------------------------------------------------------------------
_ZERO_WIDTH = set("\u200b\u200c\u200d\u2060\ufeff")


def _utf8_len(lead: int) -> int:
    """Length of the character a lead byte starts; 0 for a byte that cannot lead."""
    if lead < 0x80:
        return 1
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0


# Scripts a memory key or value may use beyond ASCII: Korean first, then what Korean
# users mix in (Latin accents, Greek/Cyrillic, kana, hanja, full-width forms, symbols,
# emoji). A closed list keeps every partial character completable: open ranges hold
# unassigned and private-use blocks where a started character could never be finished.
_SCRIPT_RANGES = (
    (0x00A1, 0x024F), (0x0370, 0x03FF), (0x0400, 0x04FF), (0x2010, 0x205E), (0x2100, 0x2BFF),
    (0x3001, 0x303F), (0x3040, 0x30FF), (0x3131, 0x318E), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3),
    (0xFF01, 0xFFEE), (0x1F000, 0x1FAFF),
)


@functools.cache
def _script_tables() -> tuple[frozenset[bytes], frozenset[bytes]]:
    """(UTF-8 encodings of the allowed non-ASCII characters, their proper prefixes)."""
    chars, prefixes = set(), set()
    for lo, hi in _SCRIPT_RANGES:
        for cp in range(lo, hi + 1):
            ch = chr(cp)
            if _char_ok(ch):
                enc = ch.encode("utf-8")
                chars.add(enc)
                prefixes.update(enc[:k] for k in range(1, len(enc)))
    return frozenset(chars), frozenset(prefixes)


def _valid_partial(partial: bytes) -> bool:
    """Whether an incomplete character can still become an allowed one."""
    return partial in _script_tables()[1]


def _complete_ok(encoded: bytes) -> bool:
    return encoded in _script_tables()[0]


def _char_ok(ch: str) -> bool:
    """A character allowed inside a memory key or value: visible text, emoji, spaces."""
    if ch in _ZERO_WIDTH or ch == "\ufffd":
        return False
    return unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def _has_separator(text: str) -> bool:
    """Whether `text` holds ':' followed by white space (formats.parse_memory's rule)."""
    return any(a == ":" and b.isspace() for a, b in zip(text, text[1:]))


# --- the memory item state machine ---------------------------------------------------------
START, KEY, VALUE, AFTER, MARKER, DONE = range(6)
_MARKER = formats.ANSWER_END.encode("utf-8")
_CLOSERS = {KEY: ord(":"), VALUE: ord("]")}
# Bytes never allowed inside a key or a value. Brackets and the colon are the format;
# parentheses, '#', '|' and '<>' would let a value spell a marker ("(답변 종료)",
# "### 답변:", "<|endoftext|>") that cuts the answer short when it is parsed.
_FORBID_VALUE = frozenset(b"[]()#|<>") | frozenset(range(0x20)) | {0x7F}
_FORBID_KEY = _FORBID_VALUE | {ord(":")}
_FORBID = {KEY: _FORBID_KEY, VALUE: _FORBID_VALUE}


@dataclass(frozen=True)
class MemoryLimits:
    key_chars: int = 24  # longest key in the reference combinations: 9 characters
    value_chars: int = 48  # the 24-token cap (SPEC §2) binds first in practice
    lead_spaces: int = 2  # the completion starts with one space (formats.training_completion)


# A state: (phase, partial char bytes, chars, has non-space, aux). aux = spaces seen in
# START/AFTER, bytes of the marker matched in MARKER, 1 in VALUE if the last complete
# character was ':' (then no white space may follow: formats.parse_memory refuses `: `
# in a value; the flag survives a partial character, so a space split over tokens, or
# U+202F over three byte tokens, is caught when it completes). 0 in KEY.
State = tuple


def _step(state: State, data: bytes, limits: MemoryLimits) -> State | None:
    """The state after reading `data`, or None if it breaks the format."""
    phase, partial, chars, nonspace, aux = state
    for b in data:
        if phase in (START, AFTER):
            if b == 0x20 and aux < limits.lead_spaces:
                aux += 1
            elif b == 0x5B and phase == START:  # '['
                phase, partial, chars, nonspace, aux = KEY, b"", 0, False, 0
            elif b == _MARKER[0]:
                phase, aux = MARKER, 1
            else:
                return None
        elif phase == MARKER:
            if b != _MARKER[aux]:
                return None
            aux += 1
            if aux == len(_MARKER):
                phase = DONE
        elif phase == DONE:
            return None
        else:  # KEY / VALUE
            cap = limits.key_chars if phase == KEY else limits.value_chars
            if partial:
                if not 0x80 <= b <= 0xBF:
                    return None
                partial += bytes([b])
                if len(partial) == _utf8_len(partial[0]):
                    if not _complete_ok(partial):
                        return None
                    space = partial.decode("utf-8").isspace()
                    if space and aux:  # ':' then white space: a second separator
                        return None
                    nonspace, partial, aux = nonspace or not space, b"", 0
                elif not _valid_partial(partial):
                    return None
            elif b == _CLOSERS[phase]:
                if not nonspace:
                    return None
                phase, partial, chars, nonspace, aux = (VALUE, b"", 0, False, 0) if phase == KEY else (AFTER, b"", 0, False, 0)
            elif b < 0x80:
                if b in _FORBID[phase] or chars + 1 > cap or (aux and b == 0x20):
                    return None
                chars += 1
                nonspace = nonspace or b != 0x20
                aux = int(b == 0x3A)  # only reachable in VALUE: ':' closes a KEY above
            elif _valid_partial(bytes([b])) and chars + 1 <= cap:
                partial, chars = bytes([b]), chars + 1  # a started character counts against the cap
            else:
                return None
    return (phase, partial, chars, nonspace, aux)


class MemoryConstraint:
    """Token tables of one tokenizer for the memory format; `start(cap)` gives a row cursor.

    Build with `memory_constraint(tokenizer)` (cached per tokenizer).
    """

    def __init__(self, tokenizer, limits: MemoryLimits | None = None):
        self.limits = limits or MemoryLimits()
        self.eos_id = tokenizer.eos_token_id
        self.table = tb = token_bytes(tokenizer)
        n = len(tb)
        self.n = n
        by_bytes: dict[bytes, int] = {}
        for i, b in enumerate(tb):
            if b:
                by_bytes.setdefault(b, i)
        self._by_bytes = by_bytes
        # Per-token features for the vectorised inner-key/value path.
        lead_free = np.zeros(n, bool)  # starts on a character boundary, valid UTF-8 (tail may be partial)
        forbid_key = np.ones(n, bool)
        forbid_val = np.ones(n, bool)
        space_lead = np.zeros(n, bool)  # first character complete and white space
        nchars = np.zeros(n, np.int64)
        nonspace = np.zeros(n, bool)
        tail = np.zeros(n, np.int64)  # bytes still needed to finish the last character
        cont_start: list[int] = []  # tokens starting with a continuation byte (finish a partial char)
        has_colon: list[int] = []
        has_rbracket: list[int] = []
        boundary: list[int] = []  # first non-space byte is '[' or '(' (or only spaces)
        for i, b in enumerate(tb):
            if not b:
                continue
            if 0x80 <= b[0] <= 0xBF:
                cont_start.append(i)
                continue
            if ord(":") in b:
                has_colon.append(i)
            if ord("]") in b:
                has_rbracket.append(i)
            rest = b.lstrip(b" ")
            if not rest or rest[0] in (0x5B, _MARKER[0]):
                boundary.append(i)
            feats = self._features(b)
            if feats is None:
                continue
            lead_free[i] = True
            nchars[i], nonspace[i], tail[i] = feats
            forbid_key[i] = any(x in _FORBID_KEY for x in b if x < 0x80)
            # ': ' inside the token (a partial tail is judged when it completes, by _step)
            text = b.decode("utf-8", errors="ignore")  # drops only the partial tail
            forbid_val[i] = any(x in _FORBID_VALUE for x in b if x < 0x80) or _has_separator(text)
            space_lead[i] = text[:1].isspace()
        self.fast = {KEY: lead_free & ~forbid_key, VALUE: lead_free & ~forbid_val}
        # After a ':' in the value: the fast tokens that do not begin with white space.
        self.fast_after_colon = self.fast[VALUE] & ~space_lead
        self.nchars, self.nonspace, self.tail = nchars, nonspace, tail
        self.slow = {KEY: np.array(has_colon, np.int64), VALUE: np.array(has_rbracket, np.int64)}
        self.cont_start = np.array(cont_start, np.int64)
        self.boundary = np.array(boundary, np.int64)
        self.marker_next = [
            np.array(sorted({by_bytes[_MARKER[p:q]] for q in range(p + 1, len(_MARKER) + 1) if _MARKER[p:q] in by_bytes}), np.int64)
            for p in range(len(_MARKER))
        ]
        # Fewest tokens that spell a byte string (any tokenization is fine for a byte machine).
        self.c_marker = [self.min_tokens(_MARKER[p:]) for p in range(len(_MARKER) + 1)]
        self.c_close = min(self.min_tokens(b"]" + _MARKER), self.min_tokens(b"] " + _MARKER))
        self.c_colon = self.min_tokens(b":")
        self.one_char = 1 if any(by_bytes.get(bytes([c])) is not None for c in b"abcxyz0123456789") else _INF

    @staticmethod
    def _features(b: bytes) -> tuple[int, bool, int] | None:
        """(characters started, has a visible character, tail bytes missing) for a token
        that starts on a character boundary; None if it holds a byte or character that
        no key or value may contain."""
        chars, nonspace, i = 0, False, 0
        while i < len(b):
            n = _utf8_len(b[i])
            if n == 0:
                return None
            if i + n > len(b):
                part = b[i:]
                return (chars + 1, nonspace, n - len(part)) if _valid_partial(part) else None
            enc = b[i : i + n]
            if n > 1 and not _complete_ok(enc):
                return None
            chars += 1
            nonspace = nonspace or not enc.decode("utf-8").isspace()
            i += n
        return chars, nonspace, 0

    def min_tokens(self, data: bytes) -> int:
        """Fewest vocabulary tokens whose bytes concatenate to `data` (_INF if none)."""
        best = [0] + [_INF] * len(data)
        for j in range(1, len(data) + 1):
            for i in range(max(0, j - 32), j):
                if best[i] + 1 < best[j] and data[i:j] in self._by_bytes:
                    best[j] = best[i] + 1
        return best[-1]

    def _rest(self, phase: int, has_char):
        """Tokens to close a key/value from here: value char if none yet, then `:` + a
        value char (key only), then `]` and the end marker. Works on arrays too."""
        close = self.c_close
        if phase == KEY:
            close = self.c_colon + self.one_char + self.c_close
        return np.where(has_char, close, self.one_char + close) if isinstance(has_char, np.ndarray) else (
            close if has_char else self.one_char + close
        )

    def need(self, state: State) -> int:
        """Tokens needed to reach the end of the marker from `state` along one explicit
        path (so an upper bound of the fewest): each step of that path lowers it by one,
        which is what keeps every masked row closable within its cap."""
        phase, partial, _, nonspace, aux = state
        if phase in (START, AFTER):
            return self.c_marker[0]
        if phase == MARKER:
            return self.c_marker[aux]
        if phase == DONE:
            return 0
        pending = _utf8_len(partial[0]) - len(partial) if partial else 0
        # A pending character can always be finished as a visible one, one byte a token.
        return pending + self._rest(phase, nonspace or pending > 0)

    def start(self, cap: int) -> MemoryCursor:
        return MemoryCursor(self, cap)

    @property
    def shortest(self) -> int:
        """Tokens of the shortest valid answer (the empty one)."""
        return self.c_marker[0]


class MemoryCursor:
    """One row's progress through the memory format."""

    def __init__(self, spec: MemoryConstraint, cap: int):
        self.spec, self.cap = spec, cap
        self.state: State | None = (START, b"", 0, False, 0)
        self.count = 0  # tokens consumed
        self.broken = False  # a token outside the mask arrived (e.g. padding after a forced stop)

    def advance(self, token: int) -> None:
        self.count += 1
        if self.broken:
            return
        if self.state[0] == DONE:  # finished: only EOS / padding follow
            return
        data = self.spec.table[token] if 0 <= token < self.spec.n else None
        new = _step(self.state, data, self.spec.limits) if data else None
        if new is None:
            self.broken = True
        else:
            self.state = new

    @property
    def done(self) -> bool:
        return not self.broken and self.state[0] == DONE

    def allowed(self, vocab: int) -> np.ndarray:
        """Boolean mask over `vocab` logits: the tokens that keep the answer valid and closable."""
        spec = self.spec
        mask = np.zeros(vocab, bool)
        if self.broken or self.state[0] == DONE:
            mask[spec.eos_id] = True
            return mask
        left = self.cap - self.count - 1  # tokens after this one
        phase, partial, chars, nonspace, aux = self.state
        if phase in (KEY, VALUE) and not partial:
            n = spec.n
            cap = spec.limits.key_chars if phase == KEY else spec.limits.value_chars
            need = spec.tail + spec._rest(phase, nonspace | spec.nonspace | (spec.tail > 0))
            fast = spec.fast_after_colon if aux else spec.fast[phase]  # aux: VALUE after ':'
            mask[:n] = fast & (chars + spec.nchars <= cap) & (need <= left)
            candidates = spec.slow[phase]
        elif phase in (KEY, VALUE):
            candidates = spec.cont_start
        elif phase in (START, AFTER):
            candidates = spec.boundary
        else:  # MARKER
            candidates = spec.marker_next[aux]
        for t in candidates.tolist():
            new = _step(self.state, spec.table[t], spec.limits)
            if new is not None and spec.need(new) <= left:
                mask[t] = True
        if not mask.any():  # the cap is below the shortest answer: still head for the end marker
            for t in spec.marker_next[aux if phase == MARKER else 0].tolist():
                if _step(self.state, spec.table[t], spec.limits) is not None:
                    mask[t] = True
            if not mask.any():
                mask[spec.eos_id] = True
        return mask


# --- the expression trie ---------------------------------------------------------------------
def expression_completions() -> list[str]:
    """The 36 answers the expression head may write, as trained (formats.training_completion
    without the EOS): ` (눈 E, 입 M, 고개 돌림 P) (답변 종료)`."""
    return [
        f" {formats.Expression(e, m, p).text} {formats.ANSWER_END}"
        for e, m, p in itertools.product(formats.EYES_LABELS, formats.MOUTH_LABELS, formats.POSE_LABELS)
    ]


class TrieConstraint:
    """A fixed set of completions as a trie of token ids (their canonical tokenization)."""

    def __init__(self, tokenizer, completions: list[str]):
        self.eos_id = tokenizer.eos_token_id
        self.root: dict = {}
        self.longest = 0
        for text in completions:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            node = self.root
            for t in ids:
                node = node.setdefault(t, {})
            node[None] = {}  # end of a completion
            self.longest = max(self.longest, len(ids))
        self.depth: dict[int, int] = {}
        self._min_depth(self.root)

    def _min_depth(self, node: dict) -> int:
        best = 0 if None in node else min(1 + self._min_depth(child) for t, child in node.items() if t is not None)
        self.depth[id(node)] = best
        return best

    def start(self, cap: int) -> TrieCursor:
        return TrieCursor(self, cap)

    @property
    def shortest(self) -> int:
        return self.depth[id(self.root)]


class TrieCursor:
    def __init__(self, spec: TrieConstraint, cap: int):
        self.spec, self.cap = spec, cap
        self.node: dict | None = spec.root
        self.count = 0
        self.broken = False

    def advance(self, token: int) -> None:
        self.count += 1
        if self.broken or None in self.node:
            return  # finished: only EOS / padding follow
        nxt = self.node.get(token)
        if nxt is None:
            self.broken = True
        else:
            self.node = nxt

    @property
    def done(self) -> bool:
        return not self.broken and None in self.node

    def allowed(self, vocab: int) -> np.ndarray:
        mask = np.zeros(vocab, bool)
        if self.broken or None in self.node:
            mask[self.spec.eos_id] = True
            return mask
        left = self.cap - self.count - 1
        ids = [t for t, child in self.node.items() if t is not None and self.spec.depth[id(child)] <= left]
        if not ids:  # over the cap whatever we do: take the shortest way out
            ids = [min((t for t in self.node if t is not None), key=lambda t: self.spec.depth[id(self.node[t])])]
        mask[ids] = True
        return mask


# --- cached per tokenizer --------------------------------------------------------------------
_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def _cached(tokenizer, kind: str, build):
    with _cache_lock:
        per = _cache.setdefault(tokenizer, {})
        if kind not in per:
            per[kind] = build()
        return per[kind]


def memory_constraint(tokenizer) -> MemoryConstraint:
    """The memory-format tables of this tokenizer (built once, then cached)."""
    return _cached(tokenizer, "memory", functools.partial(MemoryConstraint, tokenizer))


def expression_constraint(tokenizer) -> TrieConstraint:
    """The expression-label trie of this tokenizer (built once, then cached)."""
    return _cached(tokenizer, "expression", lambda: TrieConstraint(tokenizer, expression_completions()))


CONSTRAINTS = {"memory": memory_constraint, "eyes_mouth_pose": expression_constraint}


# --- the logits processor ----------------------------------------------------------------------
class ConstraintLogits(LogitsProcessor):
    """Per-row masks in a batch: row i follows `cursors[i]`, or is left alone if None.

    `prompt_width` is the (left-padded) prompt length: tokens after it are the rows' own.
    """

    def __init__(self, cursors: list, prompt_width: int):
        self.cursors = cursors
        self.prompt_width = prompt_width
        self._seen = 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        new = input_ids.shape[1] - self.prompt_width
        if new != self._seen + (1 if new else 0) and new != self._seen:
            raise RuntimeError(f"constraint cursors saw {self._seen} tokens but the batch has {new}")
        if new > self._seen:  # one step further: feed each cursor its row's last token
            last = input_ids[:, -1].tolist()
            for cursor, token in zip(self.cursors, last):
                if cursor is not None:
                    cursor.advance(token)
            self._seen = new
        vocab = scores.shape[-1]
        for i, cursor in enumerate(self.cursors):
            if cursor is None:
                continue
            keep = torch.from_numpy(cursor.allowed(vocab)).to(scores.device)
            scores[i] = scores[i].masked_fill(~keep, float("-inf"))
        return scores
