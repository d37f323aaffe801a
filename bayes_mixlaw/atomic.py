"""Files written whole or not at all: a temporary sibling renamed over the target."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def write_atomically(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(partial)`` on ``<path>.partial`` beside ``path``, then rename it to ``path``: a reader
    sees the old file or the new one, never half of one. The partial file is removed if ``write`` fails."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    try:
        write(partial)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path
