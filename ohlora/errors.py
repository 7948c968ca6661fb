"""The errors a user can cause, each turned by the CLI into one line and an exit code.

Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class OhloraError(Exception):
    """A problem with the user's input or setup; the CLI prints `ohlora: error: <message>`."""

    exit_code = 1


class ModelLoadError(OhloraError):
    """A model named by hub id, folder or `bundled` could not be loaded (exit 2)."""

    exit_code = 2


class DataError(OhloraError):
    """Bad input data, located as `file:line: message` (line None for whole-file problems)."""

    def __init__(self, path: str | Path, line: int | None, message: str):
        self.path, self.line, self.message = str(path), line, message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")
