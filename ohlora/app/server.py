"""The web app: the page with 오로라's avatar, and the HTTP API beside it.

`create_app(engine)` takes any object with the `ChatEngine` shape, so tests inject a
fake or a tiny engine and `ohlora serve` the real one; nothing here touches a model.

    >>> from fastapi.testclient import TestClient
    >>> from ohlora.app.server import create_app
    >>> client = TestClient(create_app(engine))          # doctest: +SKIP
    >>> client.post("/api/chat", json={"user": "민수", "message": "로라야 안녕!"}).json()["answer"]  # doctest: +SKIP

Concurrency: endpoints are plain `def`, so FastAPI runs each engine call in its thread
pool and the event loop stays free. Turns, deletes and resets of one user take that
user's lock (one at a time); different users never share a lock, so they run at
once. A user with `max_pending_per_user` requests already waiting gets a 429. The engine is asked to serialise per user
too (`ChatEngine` docstring); the lock here makes the API correct even if it did not.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from ohlora.app.schemas import (
    AvatarSettings,
    ChatRequest,
    ErrorOut,
    Forgotten,
    Health,
    MemoryItemOut,
    MemoryList,
    Summary,
    TurnResponse,
    check_key,
    check_user_id,
)
from ohlora.config import IDLE_SCORES
from ohlora.engine.result import ChatEngine
from ohlora.errors import OhloraError

STATIC_DIR = Path(__file__).parent / "static"
MAX_BODY_BYTES = 16 * 1024  # a 500-character message, fully \u-escaped, is < 7 KiB
# The page and its files may load nothing from elsewhere (no CDN: it must work offline).
PAGE_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'"

_ERRORS = {
    400: {"model": ErrorOut, "description": "the engine refused the input"},
    404: {"model": ErrorOut, "description": "nothing to delete"},
    413: {"model": ErrorOut, "description": "request body too large"},
    429: {"model": ErrorOut, "description": "too many requests of this user waiting"},
    422: {"model": ErrorOut, "description": "invalid user id, message or key"},
}

# FastAPI's /docs and /redoc load Swagger UI / ReDoc from a CDN (and start them with an
# inline script, which PAGE_CSP forbids): blank on an air-gapped machine. They are off;
# /docs and /redoc answer with this page instead, pointing to the schema they would show.
API_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Oh-LoRA API</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml"></head>
<body>
<h1>Oh-LoRA (오로라) HTTP API</h1>
<p>Interactive API docs (Swagger UI, ReDoc) are not served: they load their scripts
from a CDN, and this server works offline.</p>
<p>The OpenAPI schema: <a href="/openapi.json">/openapi.json</a> (load it into any
OpenAPI viewer or client generator). The endpoints are described in docs/app.md.</p>
<p><a href="/">Back to 오로라</a></p>
</body>
</html>
"""


class UserBusy(Exception):
    pass


class UserLocks:
    """One lock per user id, with a cap on how many requests of one user may wait.

    The cap keeps one client from parking every worker thread on its own lock (the
    thread pool is shared by all users). Entries go away when nobody holds or waits.

        >>> locks = UserLocks(max_pending=2)
        >>> with locks.hold("민수"):
        ...     locks.pending("민수")
        1
        >>> locks.pending("민수")
        0
    """

    def __init__(self, max_pending: int = 8):
        self.max_pending = max_pending
        self._guard = threading.Lock()
        self._entries: dict[str, list] = {}  # user -> [lock, holders + waiters]

    def pending(self, user: str) -> int:
        with self._guard:
            entry = self._entries.get(user)
            return entry[1] if entry else 0

    @contextmanager
    def hold(self, user: str):
        with self._guard:
            entry = self._entries.setdefault(user, [threading.Lock(), 0])
            if entry[1] >= self.max_pending:
                raise UserBusy(user)
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._entries[user]


class BodyLimit:
    """ASGI middleware: 413 for a body over `limit` bytes, declared or streamed.

    The body is read here, up to the limit, and replayed to the app: API bodies are
    small, and FastAPI would turn an error raised while it reads into a vague 400.
    """

    def __init__(self, app, limit: int = MAX_BODY_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_big = JSONResponse({"detail": f"request body over {self.limit} bytes", "errors": []}, status_code=413)
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                return await too_big(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await too_big(scope, receive, send)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _user(user: str) -> str:
    try:
        return check_user_id(user)
    except ValueError as e:
        raise HTTPException(422, f"user: {e}") from None


def _error_line(exc: RequestValidationError) -> tuple[str, list[dict]]:
    errors = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        msg = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            loc, msg = "body", "not valid JSON"
        errors.append({"loc": loc, "msg": msg, "type": err.get("type", "")})  # never echo the input back
    return "; ".join(f"{e['loc']}: {e['msg']}" for e in errors) or "invalid request", errors


MAX_PENDING_PER_USER = 8  # the page sends one turn at a time; 8 leaves room for API clients


def create_app(engine: ChatEngine, *, max_pending_per_user: int = MAX_PENDING_PER_USER, title: str = "Oh-LoRA (오로라)") -> FastAPI:
    """The FastAPI app serving `engine`: the page at `/`, the API under `/api`."""
    app = FastAPI(
        title=title,
        version="0.1.0",
        description="Chat with 오로라, see and correct what she remembers. One user id per browser session.",
        docs_url=None,  # Swagger UI / ReDoc need a CDN: see API_DOCS_PAGE
        redoc_url=None,
    )
    app.state.engine = engine
    locks = UserLocks(max_pending_per_user)
    app.state.user_locks = locks
    app.add_middleware(BodyLimit)

    @app.exception_handler(UserBusy)
    async def _busy(request: Request, exc: UserBusy):
        detail = f"user {exc.args[0]!r} already has {locks.max_pending} requests waiting; wait for the answers"
        return JSONResponse({"detail": detail, "errors": []}, status_code=429, headers={"Retry-After": "1"})

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        detail, errors = _error_line(exc)
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    @app.middleware("http")
    async def _page_policy(request: Request, call_next):
        response = await call_next(request)
        if not request.url.path.startswith("/api") and request.url.path != "/openapi.json":
            response.headers["Content-Security-Policy"] = PAGE_CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # Browsers ask for /favicon.ico whatever the page's <link rel="icon"> says; serve the
    # same SVG instead of a 404 in every log.
    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")

    @app.get("/docs", include_in_schema=False)
    @app.get("/redoc", include_in_schema=False)
    def api_docs():
        return HTMLResponse(API_DOCS_PAGE)

    @app.get("/healthz", response_model=Health, tags=["service"])
    def healthz() -> Health:
        return Health(status="ok", engine=type(engine).__name__)

    @app.get("/api/avatar", response_model=AvatarSettings, tags=["avatar"])
    def avatar() -> AvatarSettings:
        """The avatar's idle scores (SPEC §1 step 7), which the page reads at start-up so
        that config.IDLE_SCORES is their one source."""
        return AvatarSettings(idle=IDLE_SCORES)

    @app.post("/api/chat", response_model=TurnResponse, responses=_ERRORS, tags=["chat"])
    def chat(request: ChatRequest) -> dict:
        """One turn (SPEC §1): answer, memory used and saved, summary, expression and scores."""
        with locks.hold(request.user):
            try:
                result = engine.turn(request.user, request.message)
            except OhloraError as e:
                raise HTTPException(400, str(e)) from None
        return result.to_dict()

    @app.get("/api/memory/{user}", response_model=MemoryList, responses=_ERRORS, tags=["memory"])
    def memory(user: str, history: bool = Query(False, description="also list replaced and forgotten items")):
        """The user's memory items, oldest first; with `history=true` inactive ones too."""
        user = _user(user)
        items = [MemoryItemOut(**r.to_dict()) for r in engine.memories(user, include_history=history)]
        return MemoryList(user=user, items=items)

    @app.delete("/api/memory/{user}/{key:path}", response_model=Forgotten, responses=_ERRORS, tags=["memory"])
    def forget(user: str, key: str):
        """Forget the user's active items with this key. 404 when there is none (so a
        client learns that a typo deleted nothing); the items stay as history."""
        user = _user(user)
        try:
            key = check_key(key)
        except ValueError as e:
            raise HTTPException(422, f"key: {e}") from None
        with locks.hold(user):
            n = engine.forget(user, key)
        if not n:
            raise HTTPException(404, f"user {user!r} has no active memory with key {key!r}")
        return Forgotten(user=user, key=key, forgotten=n)

    @app.get("/api/summary/{user}", response_model=Summary, responses=_ERRORS, tags=["chat"])
    def summary(user: str):
        """The summary the user's next turn will carry (SPEC §1.6)."""
        user = _user(user)
        return Summary(user=user, summary=engine.summary(user))

    @app.delete("/api/summary/{user}", response_model=Summary, responses=_ERRORS, tags=["chat"])
    def reset(user: str):
        """Start a new conversation: forget the summary (not the memory)."""
        user = _user(user)
        with locks.hold(user):
            engine.reset(user)
        return Summary(user=user, summary=engine.summary(user))

    return app
