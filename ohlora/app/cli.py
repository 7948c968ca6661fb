"""Subcommands of this concept (filled in by its issue)."""


def register(subparsers) -> None:
    """Add this concept's subcommands to the `ohlora` parser."""
