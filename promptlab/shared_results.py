"""results.jsonl when several processes run one suite: each appends to its own file, the main one merges.

The main process holds results.jsonl, and its lock, as a single process does. Every other process
appends its finished rows, flushed and fsynced, to `results.rank-<r>.jsonl` beside it, so an
interruption still loses at most the runs in flight. When all are done the new rows are gathered
once, the main process appends the others' rows to results.jsonl and deletes their files.

Files left by an interrupted launch are merged first by the next run, one process or many, so no
finished run is lost or run again.
"""
from __future__ import annotations

from pathlib import Path

from promptlab import distributed


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
        from promptlab.runner import ResultsFile  # the runner imports this module
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
