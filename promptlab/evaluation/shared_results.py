"""results.jsonl: one locked file of finished runs (ResultsFile), and its form for several processes
(SharedResults), where each appends to its own file and the main one merges.

The main process holds results.jsonl, and its lock, as a single process does. Every other process
appends its finished rows, flushed and fsynced, to `results.rank-<r>.jsonl` beside it, so an
interruption still loses at most the runs in flight. When all are done the new rows are gathered
once, the main process appends the others' rows to results.jsonl and deletes their files.

Files left by an interrupted launch are merged first by the next run, one process or many, so no
finished run is lost or run again.
"""
from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from promptlab.runtime import distributed
from promptlab.errors import UserError


class ResultsFile:
    """results.jsonl, locked while open: read the finished rows, append new ones durably."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: list[dict] = []

    def __enter__(self) -> ResultsFile:
        self._file = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise UserError("another promptlab eval is writing to this file", where=self.path,
                            fix="wait for it to finish, or give another --output folder") from None
        self.rows = self._read()
        return self

    def __exit__(self, *exc_info) -> None:
        self._file.close()  # closing releases the lock

    def _read(self) -> list[dict]:
        self._file.seek(0)
        text = self._file.read()
        lines = text.split("\n")
        complete, last = lines[:-1], lines[-1]  # `last` is "" unless the final line was torn
        rows = [self._parse(line, number) for number, line in enumerate(complete, start=1) if line.strip()]
        if last:
            self._cut_torn_line(len(text.encode()) - len(last.encode()))
        return rows

    def _parse(self, line: str, number: int) -> dict:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(f"not a JSON row ({error.msg})", where=self.path, line=number,
                            fix="delete that line, or give another --output folder") from None
        if not isinstance(row, dict) or "key" not in row:
            raise UserError("not a results row (no 'key')", where=self.path, line=number,
                            fix="delete that line, or give another --output folder")
        return row

    def _cut_torn_line(self, size: int) -> None:
        # A run killed mid-write leaves a line without its newline: that run did not finish.
        self._file.truncate(size)
        self._file.seek(0, os.SEEK_END)

    def append(self, row: dict) -> None:
        self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.rows.append(row)


def rank_file(path: Path, rank: int) -> Path:
    return path.with_name(f"{path.stem}.rank-{rank}{path.suffix}")


def _leftover_files(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.stem}.rank-*{path.suffix}"))


class SharedResults:
    """The results file of this process, with `rows` (every finished row) and `append` like ResultsFile."""

    def __init__(self, path: Path):
        self.shared_path = path
        self.path = path if distributed.is_main() else rank_file(path, distributed.rank())
        self.rows: list[dict] = []
        self._new_rows: list[dict] = []

    def __enter__(self) -> SharedResults:
        if distributed.is_main():
            self._file = ResultsFile(self.path).__enter__()
            self._merge_leftovers(ResultsFile)
        rows = distributed.broadcast(self._file.rows if distributed.is_main() else None)
        if not distributed.is_main():  # opened after the merge: a leftover file of this name is gone
            self._file = ResultsFile(self.path).__enter__()
        self.rows = list(rows)
        return self

    def _merge_leftovers(self, results_file: type) -> None:
        known = {row["key"] for row in self._file.rows}
        for leftover in _leftover_files(self.shared_path):
            with results_file(leftover) as part:
                for row in part.rows:
                    if row["key"] not in known:
                        self._file.append(row)
                        known.add(row["key"])
            leftover.unlink()

    def append(self, row: dict) -> None:
        self._file.append(row)
        self.rows.append(row)
        self._new_rows.append(row)

    def __exit__(self, exc_type, *exc_info) -> None:
        try:
            if exc_type is None and distributed.world() > 1:
                self._collect()
        finally:
            self._file.__exit__(exc_type, *exc_info)

    def _collect(self) -> None:
        """Every process's new rows, once; the main process appends the others' and deletes their files."""
        for rank, rows in enumerate(distributed.gather(self._new_rows)):
            if rank == distributed.rank():
                continue
            self.rows.extend(rows)
            if distributed.is_main():
                for row in rows:
                    self._file.append(row)
        if distributed.is_main():
            for rank in range(1, distributed.world()):
                rank_file(self.shared_path, rank).unlink(missing_ok=True)
