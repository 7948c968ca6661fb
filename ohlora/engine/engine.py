"""One chat turn (SPEC §1) on ONE base model with the four heads as LoRA adapters.

    guard ─► retrieve ─► final input ─► generate #1 [reply | memory] ─► save
          ─► generate #2 [summary | expression] ─► scores, summary for the next turn

Each `generate` is one batch with a row per head and per-row adapters; the memory and
expression rows are constrained (ohlora.heads.constraints), so they never need a retry.
The reply keeps the reference checks with a retry cap and fallback; the summary too.
Reply (summary) candidates carry the check as `accept`, so a batch of k candidates
stops once the first passing one in order has finished (ohlora.heads.generation).

Concurrency: turns of one user are serialised by a per-user lock (the summary carried
between turns is per user); different users run concurrently up to the model, which
is shared under one lock — peft's mixed-batch adapters work by hooks registered on the
shared layers for the duration of a `generate`, so two overlapping calls would see
each other's hooks. Retrieval and the store have their own locks.

    >>> from ohlora.engine import Engine                        # doctest: +SKIP
    >>> engine = Engine("~/.cache/ohlora/demo")                 # doctest: +SKIP
    >>> r = engine.turn("민지", "로라야 나 오늘 카페 가")          # doctest: +SKIP
    >>> r.answer, r.memory_saved, r.expression, r.generate_calls  # doctest: +SKIP
    ('좋겠다! 누구랑 가?', '[오늘 일정: 카페 방문]', {'eyes': '크게', ...}, 2)
"""

from __future__ import annotations

import random
import re
import threading
import time
import zlib
from collections import defaultdict
from pathlib import Path

import torch

from ohlora import config, formats
from ohlora.engine.config import EngineConfig, ModelPaths
from ohlora.engine.result import MemoryRecord, TurnResult
from ohlora.heads.generation import Generated, HeadRequest, generate_heads, load_heads

BLANK_MESSAGE = "응? 뭐라고 했어? 한 번만 다시 말해줘 😊"  # refusal of a blank prompt (SPEC §1.1 spirit)
TOO_LONG_MESSAGE = "우와, 너무 길어서 한 번에 못 읽겠어 😅 {limit}토큰 안으로 짧게 다시 말해줄래?"  # SPEC §1.1
# A user's square brackets become full-width ones: `[key: value]` typed by a user must
# not look like a retrieved memory to the heads (formats.final_input puts real ones first).
_USER_BRACKETS = str.maketrans({"[": "［", "]": "］"})
_BRACKETED = re.compile(r"\[[^\[\]]*\]")


class Engine:
    """Runs SPEC §1 turns for named users; implements `ohlora.engine.result.ChatEngine`.

    models_dir: a MODELS_DIR (see `ohlora.engine.config`); None: the demo cache.
    store: a memory store path (default MODELS_DIR/memory.sqlite) or a `MemoryStore`.
    """

    def __init__(self, models_dir: str | Path | None = None, config_: EngineConfig | None = None, *, store=None):
        from ohlora.memory.retrieval import Retriever
        from ohlora.memory.store import MemoryStore
        from ohlora.models import load_sentence_encoder

        self.config = config_ or EngineConfig()
        self.paths = ModelPaths.from_dir(models_dir)
        self.model, self.tokenizer = load_heads(self.paths.base, self.paths.adapters, device=self.config.device)
        encoder = load_sentence_encoder(self.paths.memory_encoder, flag="--models", device="cpu")
        self.store = store if isinstance(store, MemoryStore) else MemoryStore(store or self.paths.store)
        self.retriever = Retriever(encoder, self.store)
        self._init_state()

    @classmethod
    def from_parts(cls, model, tokenizer, retriever, store, config_: EngineConfig | None = None) -> Engine:
        """An engine over already loaded parts (tests, benchmarks)."""
        self = cls.__new__(cls)
        self.config = config_ or EngineConfig()
        self.paths = None
        self.model, self.tokenizer, self.retriever, self.store = model, tokenizer, retriever, store
        self._init_state()
        return self

    def _init_state(self) -> None:
        self._summaries: dict[str, str] = {}
        self._turns: dict[str, int] = defaultdict(int)
        self._user_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._model_lock = threading.Lock()
        self._retrieval_lock = threading.Lock()
        self.generate_calls = 0  # over the engine's life
        self._calls: dict[int, int] = defaultdict(int)  # per thread, for TurnResult.generate_calls
        self._steps: dict[int, int] = defaultdict(int)  # per thread, for TurnResult.decode_steps

    # --- ChatEngine ---------------------------------------------------------------------
    def turn(self, user: str, prompt: str) -> TurnResult:
        """One SPEC §1 turn for `user`; serialised per user."""
        user = formats.normalize(str(user)) or "default"
        with self._user_lock(user):
            return self._turn(user, prompt)

    def memories(self, user: str, include_history: bool = False) -> list[MemoryRecord]:
        return self.store.items(formats.normalize(str(user)) or "default", include_history=include_history)

    def forget(self, user: str, key: str) -> int:
        return self.store.forget(formats.normalize(str(user)) or "default", formats.normalize(key))

    def summary(self, user: str) -> str:
        return self._summaries.get(formats.normalize(str(user)) or "default", "")

    def reset(self, user: str) -> None:
        user = formats.normalize(str(user)) or "default"
        with self._user_lock(user):
            self._summaries.pop(user, None)

    def close(self) -> None:
        self.store.close()

    # --- the turn -------------------------------------------------------------------------
    def _user_lock(self, user: str) -> threading.Lock:
        with self._locks_lock:
            return self._user_locks.setdefault(user, threading.Lock())

    def _turn(self, user: str, prompt: str) -> TurnResult:
        cfg = self.config
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        self._turns[user] += 1
        turn_no = self._turns[user]
        calls_before, steps_before = self._calls_counter(), self._steps[threading.get_ident()]

        # 1. guard (SPEC §1.1): markers cannot be impersonated, blank and long prompts refused.
        text = formats.strip_markers(str(prompt or ""))
        result = TurnResult(user=user, prompt=text, answer="")
        if not text:
            result.answer, result.refused = BLANK_MESSAGE, True
        else:
            n_tokens = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            if n_tokens > cfg.max_prompt_tokens:
                result.answer, result.refused = TOO_LONG_MESSAGE.format(limit=cfg.max_prompt_tokens), True
        timings["guard"] = time.perf_counter() - t0
        if result.refused:
            result.summary = self._summaries.get(user, "")
            timings["total"] = time.perf_counter() - t0
            result.timings = timings
            return result
        safe = text.translate(_USER_BRACKETS)

        # 2. retrieve (SPEC §1.2): one encoder pass for the prompt, item vectors cached.
        t = time.perf_counter()
        with self._retrieval_lock:
            picked = self.retriever.best_for_user(user, safe, threshold=cfg.retrieval_threshold, min_chars=cfg.min_memory_chars)
        if picked:
            result.memory_used, result.memory_score = picked[0], float(picked[1])
        timings["retrieve"] = time.perf_counter() - t

        # 3. final input (SPEC §1.3)
        final = formats.final_input(safe, memory=result.memory_used, summary=self._summaries.get(user) or None)
        result.final_input = final
        seed = self._seeder(user, turn_no)

        if cfg.pipeline == "reference":
            answer, item, summary, expression = self._reference_heads(final, seed, timings)
        else:
            answer, item, summary, expression = self._batched_heads(final, seed, timings, user, result, text)

        result.answer = answer
        if cfg.pipeline == "reference":
            t = time.perf_counter()
            self._save(user, item, text, result)
            timings["save"] = time.perf_counter() - t
        result.summary = summary
        self._summaries[user] = summary  # SPEC §1.6: empty if it failed
        result.expression = {"eyes": expression.eyes, "mouth": expression.mouth, "pose": expression.pose}
        rng = random.Random(f"{cfg.seed}:{user}:{turn_no}") if cfg.seed is not None else None
        result.scores = expression.scores(rng)
        result.generate_calls = self._calls_counter() - calls_before
        result.decode_steps = self._steps[threading.get_ident()] - steps_before
        timings["total"] = time.perf_counter() - t0
        result.timings = timings
        return result

    def _batched_heads(self, final: str, seed, timings, user, result, raw_prompt):
        cfg = self.config
        t = time.perf_counter()
        reply_cap = self._reply_cap(final)
        n = max(1, cfg.reply_candidates)
        reply_ok = lambda s: self._reply_problem(s) is None  # noqa: E731
        rows = [HeadRequest("output_message", final, max_new_tokens=reply_cap, accept=reply_ok) for _ in range(n)]
        rows.append(HeadRequest("memory", final, constrained=cfg.constrained))
        out = self._generate(rows, seed)
        answer, tries = self._first_passing(out[:n], self._reply_problem), n
        memory_out = out[n]
        retries = config.GENERATION["output_message"].retries
        while answer is None and tries < retries:  # SPEC §2: up to 15 tries, then (읽씹)
            k = min(n, retries - tries)
            answer = self._first_passing(self._generate([rows[0]] * k, seed), self._reply_problem)
            tries += k
        answer = answer if answer is not None else config.REPLY_FALLBACK
        timings["reply_memory"] = time.perf_counter() - t

        t = time.perf_counter()
        ok, item = formats.parse_memory_output(memory_out.text)
        self._save(user, item if ok else None, raw_prompt, result)
        timings["save"] = time.perf_counter() - t

        t = time.perf_counter()
        m = max(1, cfg.summary_candidates)
        summary_ok = lambda s: formats.summary_problem(s) is None  # noqa: E731
        rows = [HeadRequest("summary", formats.head_input("summary", final, answer), accept=summary_ok) for _ in range(m)]
        rows.append(
            HeadRequest("eyes_mouth_pose", formats.head_input("eyes_mouth_pose", final, answer), constrained=cfg.constrained)
        )
        out = self._generate(rows, seed)
        expression_out = out[m]
        summary, tries = self._first_passing(out[:m], formats.summary_problem), m
        retries = config.GENERATION["summary"].retries
        while summary is None and tries < retries:  # SPEC §2: 3 tries, then empty
            k = min(m, retries - tries)
            summary = self._first_passing(self._generate([rows[0]] * k, seed), formats.summary_problem)
            tries += k
        expression = formats.parse_expression(expression_out.text) or formats.DEFAULT_EXPRESSION
        timings["summary_expression"] = time.perf_counter() - t
        return answer, item, summary or "", expression

    def _reference_heads(self, final: str, seed, timings):
        """SPEC §2 as the reference ran it: four heads one after another, one sample per
        `generate`, retried until the checks pass (15/5/3/3), no constraints."""
        t = time.perf_counter()

        def retry(head: str, input_text: str, ok, cap=None):
            for _ in range(config.GENERATION[head].retries):
                text = self._generate([HeadRequest(head, input_text, max_new_tokens=cap)], seed)[0].text
                if ok(text):
                    return text
            return None

        answer = retry("output_message", final, lambda s: self._reply_problem(s) is None, self._reply_cap(final))
        answer = answer if answer is not None else config.REPLY_FALLBACK
        timings["reply"] = time.perf_counter() - t
        t = time.perf_counter()
        mem = retry("memory", final, lambda s: formats.parse_memory_output(s)[0])
        item = formats.parse_memory_output(mem)[1] if mem is not None else None
        timings["memory"] = time.perf_counter() - t
        t = time.perf_counter()
        summary = retry("summary", formats.head_input("summary", final, answer), lambda s: formats.summary_problem(s) is None)
        timings["summary"] = time.perf_counter() - t
        t = time.perf_counter()
        expr = retry("eyes_mouth_pose", answer, lambda s: formats.parse_expression(s) is not None)
        expression = formats.parse_expression(expr) if expr is not None else formats.DEFAULT_EXPRESSION
        timings["expression"] = time.perf_counter() - t
        return answer, item, summary or "", expression

    # --- pieces -------------------------------------------------------------------------------
    def _save(self, user: str, item, raw_prompt: str, result: TurnResult) -> None:
        """SPEC §1.5 plus: a new value of a known key replaces the old (kept as history).
        An item copied verbatim from `[...]` the user typed is not saved: user text
        cannot write memory directly."""
        if item is None:
            return
        typed = {formats.compact(m) for m in _BRACKETED.findall(formats.normalize(raw_prompt))}
        if formats.compact(item.text) in typed:
            return
        added = self.store.add(user, item, replace=True)
        if added.saved is not None:
            result.memory_saved = added.saved.text
            if added.replaced:
                result.memory_replaced = added.replaced[-1].text

    def _reply_problem(self, text: str) -> str | None:
        """SPEC §2's reply checks; with `strict_reply`, also no bare structured answer
        (a reply head that writes an expression label or a memory item has failed)."""
        problem = formats.reply_problem(text)
        if problem or not self.config.strict_reply:
            return problem
        if formats.parse_expression(text) is not None or formats.parse_memory(text) is not None:
            return "another head's format"
        return None

    def _reply_cap(self, final: str) -> int:
        """SPEC §2: the reply is capped at 96 tokens in all (prompt included), floored."""
        gen = config.GENERATION["output_message"]
        prompt_len = len(self.tokenizer(formats.inference_prompt(final), add_special_tokens=False)["input_ids"])
        return max(gen.max_new_tokens - prompt_len, self.config.min_reply_tokens)

    @staticmethod
    def _first_passing(outs: list[Generated], problem) -> str | None:
        """The first sample in order that passes; a row cut by the early exit is never
        taken (it only runs after the settled one, and its text is unfinished)."""
        for o in outs:
            if o.cut:
                continue
            if problem(o.text) is None:
                return o.text
        return None

    def _seeder(self, user: str, turn_no: int):
        if self.config.seed is None:
            return None
        return [zlib.crc32(f"{self.config.seed}:{user}:{turn_no}".encode()), 0]

    def _calls_counter(self) -> int:
        """generate calls made by this thread (a turn runs on one thread)."""
        return self._calls[threading.get_ident()]

    def _generate(self, rows: list[HeadRequest], seed) -> list[Generated]:
        with self._model_lock:
            if seed is not None:  # reproducible turns: each call of a turn gets its own seed
                torch.manual_seed(seed[0] + seed[1])
                seed[1] += 1
            out = generate_heads(self.model, self.tokenizer, rows, top_k=self.config.top_k, mixed=self.config.mixed_adapters)
            self.generate_calls += 1
            self._calls[threading.get_ident()] += 1
            self._steps[threading.get_ident()] += out[0].steps if out else 0  # forward passes run
        return out
