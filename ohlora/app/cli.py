"""`ohlora serve`: the web page and HTTP API over one Engine (docs/app.md).

argparse only at import: FastAPI, uvicorn and the models load when the command runs.
"""

from __future__ import annotations

import argparse
import socket
from dataclasses import dataclass, field, fields


@dataclass
class ServeConfig:
    """Where the server listens. The engine flags (--models, --threshold, --seed,
    --pipeline) are `ohlora chat`'s, so both front ends load the same way."""

    # Loopback by default: the API has no authentication, so serving the whole network
    # is a choice the user makes by passing --host 0.0.0.0.
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=7860, metadata={"help": "TCP port (7860: the usual port of local ML demos)"})


def _add_flags(parser: argparse.ArgumentParser) -> None:
    from ohlora.engine.cli import _add_engine_flags

    _add_engine_flags(parser)
    parser.add_argument("--store", default=None, help="memory store file (default: MODELS_DIR/memory.sqlite)")
    for f in fields(ServeConfig):
        parser.add_argument(f"--{f.name}", type=type(f.default), default=f.default,
                            help=f"{f.metadata['help']} (default: {f.default})")


def register(subparsers) -> None:
    """Add `ohlora serve` to the `ohlora` parser."""
    p = subparsers.add_parser(
        "serve",
        help="web page with 오로라's avatar, memory panel and HTTP API",
        description="Serve the chat page at http://HOST:PORT/ and the API under /api (OpenAPI at /openapi.json).",
    )
    _add_flags(p)
    p.set_defaults(func=run)


def check_port(host: str, port: int) -> None:
    """One clear line instead of uvicorn's traceback when the address cannot be used."""
    from ohlora.errors import OhloraError

    if not 0 < port < 65536:
        raise OhloraError(f"--port must be 1-65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise OhloraError(f"--host {host!r} is not an address of this machine ({e.strerror})") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            raise OhloraError(f"cannot listen on {host}:{port} ({e.strerror}); pick another --port") from None


def build_engine(args):
    """The real Engine over a MODELS_DIR (a ModelLoadError line if anything is missing)."""
    from ohlora.engine.config import EngineConfig
    from ohlora.engine.engine import Engine

    cfg = EngineConfig(retrieval_threshold=args.threshold, seed=args.seed, pipeline=args.pipeline)
    return Engine(args.models, cfg, store=args.store)


def run(args) -> int:
    import uvicorn

    from ohlora.app.server import create_app

    check_port(args.host, args.port)
    engine = build_engine(args)
    try:
        app = create_app(engine)
        print(f"오로라: http://{args.host}:{args.port}/  (API: /api, schema: /openapi.json; Ctrl+C to stop)", flush=True)
        # One process: the engine and the per-user locks live in it (workers would load
        # the models once each and could not serialise a user's turns between them).
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        engine.close()
    return 0
