"""Writing result files atomically: a reader never sees half a file."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Iterable

from promptlab.errors import UserError


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and a rename, creating the folder: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o644)  # mkstemp's 0600 would hide results from other users
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path: Path, data) -> None:
    write_atomic(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode())


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    write_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode())


def output_folder(path: str | Path) -> Path:
    """The --output folder, created if needed; a file in its place is a user error."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--output '{folder}' is a file, not a folder", fix="give a folder path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create output folder '{folder}': {error.strerror}") from None
    return folder
