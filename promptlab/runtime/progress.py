"""Progress on stderr: a live bar in a terminal, a plain line every few seconds anywhere else.

Logs and CI see `scoring: 640/2000 (32%) 41.2 ex/s, ETA 0:33` lines instead of nothing (or of
carriage-return bars); a run shorter than the interval prints none. Under a launcher only the main
process reports.
"""
from __future__ import annotations

import statistics
import sys
import time
from collections import defaultdict
from typing import Hashable, Iterable, TextIO

from tqdm.auto import tqdm

from promptlab.runtime.distributed import process_rank

LONG_RUN = 64  # items; shorter runs finish before a bar is worth drawing
PLAIN_INTERVAL = 5.0  # seconds between plain progress lines


class PlainProgress:
    """The part of tqdm's interface promptlab uses, printing one plain line every `interval` seconds."""

    def __init__(self, total: int | None, description: str, *, unit: str = "it", file: TextIO | None = None,
                 interval: float = PLAIN_INTERVAL, disable: bool = False):
        self.total, self.description, self.unit, self.interval = total, description, unit, interval
        self.file, self.disable = file, disable
        self.n, self.postfix = 0, ""
        self.start = self._last = time.perf_counter()
        self._printed_at: int | None = None  # the count of the last line printed

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if not self.disable and now - self._last >= self.interval:
            self._last = now
            self._print()

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{key} {value}" for key, value in values.items())

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def write(self, text: str, file: TextIO | None = None) -> None:
        print(text, file=file or self.file or sys.stderr, flush=True)

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        done = f"{self.n}/{self.total} ({100 * self.n / self.total:.0f}%)" if self.total else f"{self.n}"
        text = f"{self.description}: {done} {rate:.1f} {self.unit}/s"
        if self.total and rate > 0:
            text += f", ETA {format_seconds((self.total - self.n) / rate)}"
        return text + (f" · {self.postfix}" if self.postfix else "")

    def _print(self) -> None:
        print(self.line(), file=self.file or sys.stderr, flush=True)
        self._printed_at = self.n

    def close(self) -> None:
        if self._printed_at not in (None, self.n) and not self.disable:  # the final count, if not just printed
            self._print()
        self.disable = True

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def progress_bar(total: int | None, description: str, *, unit: str = "it", always: bool = False,
                 file: TextIO | None = None):
    """tqdm in a terminal (for runs of LONG_RUN items or more, or `always`); plain lines elsewhere."""
    stream = file or sys.stderr
    main = process_rank() == 0  # under a launcher, the main process's bar only
    if not stream.isatty():
        return PlainProgress(total, description, unit=unit, file=stream, disable=not main)
    shown = main and (always or total is None or total >= LONG_RUN)
    return tqdm(total=total, desc=description, file=stream, leave=False, dynamic_ncols=True, unit=unit,
                disable=None if shown else True)


def format_seconds(seconds: float) -> str:
    return tqdm.format_interval(max(0.0, seconds))


class RunTimes:
    """Remaining time of a queue of runs from the measured time of finished runs of the same kind.

    A kind is e.g. (method, k): a zero-shot run and a fine-tuning run differ a hundredfold, so one
    average over all runs says '1 minute' with hours to go. A kind not measured yet counts as the
    mean of the kinds that are (the best guess there is).
    """

    def __init__(self):
        self._seconds: dict[Hashable, list[float]] = defaultdict(list)

    def add(self, kind: Hashable, seconds: float) -> None:
        self._seconds[kind].append(seconds)

    def remaining(self, kinds: Iterable[Hashable]) -> float | None:
        if not self._seconds:
            return None
        means = {kind: statistics.mean(values) for kind, values in self._seconds.items()}
        fallback = statistics.mean(means.values())
        return sum(means.get(kind, fallback) for kind in kinds)
