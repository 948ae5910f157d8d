"""Where promptlab keeps things on disk."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """The cache folder (`$PROMPTLAB_CACHE`, else `~/.cache/promptlab`), created on demand."""
    root = Path(os.environ.get("PROMPTLAB_CACHE") or Path.home() / ".cache" / "promptlab")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
