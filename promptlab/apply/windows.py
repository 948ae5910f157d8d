"""Time windows over a labelled stream: fixed, UTC-aligned windows and the counts `windows.csv` holds.

A window of `--window 1d` runs from 00:00 UTC to the next 00:00; weeks start on Monday; hours and
minutes align to the hour and the minute. Every labelled document counts once in its window for each
of its classifier values, overall (group "") and within each value of each other classifier
(group "topic=crude"): so for a one-label classifier the counts of group "" add up to the window's
documents. An entity classifier gives a document several values (the entities found), or none.
"""
from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from promptlab.errors import UserError

UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MONDAY_OFFSET = 4 * 86400  # 1970-01-01 was a Thursday: weeks start 4 days later
WINDOW_COLUMNS = ("window_start", "window_end", "classifier", "label", "group", "count", "share")
SHARE_DIGITS = 6


@dataclass(frozen=True)
class Windowing:
    seconds: int
    text: str  # as given, e.g. "1d"

    @property
    def origin(self) -> int:
        return MONDAY_OFFSET if self.seconds % UNITS["w"] == 0 else 0

    def start_of(self, moment: datetime) -> datetime:
        """The start of the window holding `moment` (an aware UTC datetime)."""
        epoch = int(moment.timestamp() // 1)
        start = (epoch - self.origin) // self.seconds * self.seconds + self.origin
        return datetime.fromtimestamp(start, timezone.utc)

    def end_of(self, start: datetime) -> datetime:
        return start + timedelta(seconds=self.seconds)

    def between(self, first: datetime, last: datetime) -> list[datetime]:
        """Every window start from the window of `first` to the window of `last`, empty ones included."""
        starts, start = [], self.start_of(first)
        while start <= last:
            starts.append(start)
            start = self.end_of(start)
        return starts


def parse_window(text: str) -> Windowing:
    """'1d', '6h', '30m', '2w' -> a Windowing; anything else is a UserError."""
    match = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", text or "")
    if not match or int(match.group(1)) == 0:
        raise UserError(f"--window '{text}' is not a window length",
                        fix="write a positive number and a unit: 30m, 6h, 1d or 1w")
    return Windowing(int(match.group(1)) * UNITS[match.group(2)], text.strip())


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, to the second."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Labelled:
    """A labelled document as windows and alerts see it."""

    id: str
    time: datetime  # aware, UTC
    values: dict[str, tuple[str, ...]]  # classifier -> its label (one), or the entities found (any number)
    probabilities: dict[str, dict[str, float]]  # text classifier -> label -> probability


def group_name(classifier: str, value: str) -> str:
    return f"{classifier}={value}"


@dataclass
class WindowCounts:
    """Counts per window × classifier value × group, kept up to date document by document."""

    windowing: Windowing
    classifiers: list[str]
    labels: dict[str, list[str]]  # the label set of each text classifier (entity classifiers: open)
    counts: Counter = field(default_factory=Counter)  # (start, classifier, value, group) -> documents
    totals: Counter = field(default_factory=Counter)  # (start, group) -> documents
    seen_values: dict[str, set[str]] = field(default_factory=dict)  # entity classifiers' values so far

    def add(self, document: Labelled) -> None:
        start = self.windowing.start_of(document.time)
        groups = [""] + [group_name(other, value) for other in self.classifiers
                         for value in document.values.get(other, ())]
        for group in groups:
            self.totals[start, group] += 1
            for classifier in self.classifiers:
                if group.startswith(f"{classifier}="):
                    continue  # a classifier within its own groups says nothing
                for value in document.values.get(classifier, ()):
                    self.counts[start, classifier, value, group] += 1
                    self.seen_values.setdefault(classifier, set()).add(value)

    @property
    def documents(self) -> int:
        return sum(count for (start, group), count in self.totals.items() if group == "")

    def starts(self) -> list[datetime]:
        return sorted({start for start, group in self.totals})

    def rows(self) -> list[dict]:
        """windows.csv's rows: every value of every classifier in every (window, group) holding documents,
        zero counts included for the labels of a text classifier."""
        rows = []
        for (start, group), total in sorted(self.totals.items()):
            for classifier in self.classifiers:
                if group.startswith(f"{classifier}="):
                    continue
                for value in self.labels.get(classifier) or sorted(self.seen_values.get(classifier, ())):
                    count = self.counts[start, classifier, value, group]
                    if count or classifier in self.labels:
                        rows.append({"window_start": iso(start), "window_end": iso(self.windowing.end_of(start)),
                                     "classifier": classifier, "label": value, "group": group, "count": count,
                                     "share": round(count / total, SHARE_DIGITS)})
        return rows

    def csv_text(self) -> str:
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, WINDOW_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows())
        return buffer.getvalue()
