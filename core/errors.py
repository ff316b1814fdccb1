"""Typed errors raised by core. Each carries the path so the UI reports one line per file."""

from __future__ import annotations

import os


def printable(text: str, limit: int = 300) -> str:
    """Text made safe for a one-line message: control characters shown as '?', length capped."""
    out = "".join(ch if ch.isprintable() else "?" for ch in text)
    return out if len(out) <= limit else out[: limit - 1] + "…"


class DeepscopeError(Exception):
    """Base class of every error core raises on purpose."""


class ExrError(DeepscopeError):
    """A file could not be read: ``str(err)`` is one line naming the file and the problem."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = os.fspath(path) if path is not None else None
        self.problem = printable(" ".join(str(problem).split()))
        super().__init__(self.problem if self.path is None else f"{self.path}: {self.problem}")


class UnsupportedError(ExrError):
    """A valid file that uses a feature Deepscope cannot decode."""


class SelectionError(DeepscopeError):
    """A query, layer name or id list that cannot be applied."""


class Cancelled(DeepscopeError):
    """Work stopped because the caller asked (a newer request superseded it)."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = os.fspath(path) if path is not None else None
        super().__init__("cancelled" if path is None else f"{self.path}: cancelled")
