"""`monitor`'s loop: read the stream, classify each new document with every classifier, keep the outputs current.

labelled.jsonl is the record: it grows by whole chunks (one write each, flushed), and a restart
cuts a torn last line, reads it back and skips the ids it holds, so a run killed half-way and
started again classifies each document once and ends with the same files. windows.csv (after each
chunk), alerts.jsonl and the report (when a window closes, and at the end) are derived from it and
rewritten atomically. Under --follow a window counts as closed once a document from a later window
has arrived; alerts wait for that, and at the end every window is judged.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator

from promptlab.apply.alerts import Rule, evaluate_all
from promptlab.apply.monitor_classifiers import OpenedClassifier
from promptlab.apply.monitor_report import write_report
from promptlab.apply.stream import Document, StreamReader, parse_time
from promptlab.apply.windows import Labelled, WindowCounts, Windowing, iso
from promptlab.errors import UserError
from promptlab.runtime.outputs import write_atomic, write_jsonl

LABELLED, WINDOWS, ALERTS = "labelled.jsonl", "windows.csv", "alerts.jsonl"


def labelled_view(row: dict) -> Labelled:
    """A labelled.jsonl row as windows and alerts see it."""
    values = {name: (label,) for name, label in row["labels"].items()}
    values.update({name: tuple(dict.fromkeys(entity["text"] for entity in found))
                   for name, found in row.get("entities", {}).items()})
    return Labelled(row["id"], parse_time(row["time"]), values, row.get("probabilities", {}))


@dataclass
class MonitorState:
    """What the output folder holds: labelled documents, their window counts, and the alerts."""

    folder: Path
    names: list[str]
    windowing: Windowing
    rules: list[Rule]
    counts: WindowCounts
    documents: list[Labelled] = field(default_factory=list)
    latest_window: datetime | None = None  # the window of the latest document so far
    _handle = None

    @classmethod
    def open(cls, folder: Path, names: list[str], labels: dict[str, list[str] | None], windowing: Windowing,
             rules: list[Rule]) -> MonitorState:
        text_labels = {name: value for name, value in labels.items() if value is not None}
        state = cls(folder, names, windowing, rules, WindowCounts(windowing, names, text_labels))
        for row in state._read_existing():
            state._add(row)
        return state

    def _read_existing(self) -> Iterator[dict]:
        path = self.folder / LABELLED
        if not path.exists():
            return
        data = path.read_bytes()
        whole = data[:data.rfind(b"\n") + 1]  # a torn last line (a killed write) is cut
        if len(whole) != len(data):
            with path.open("r+b") as handle:
                handle.truncate(len(whole))
        for number, line in enumerate(whole.decode("utf-8").splitlines(), start=1):
            row = json.loads(line)
            found = sorted({*row.get("labels", {}), *row.get("entities", {})})
            if found != sorted(self.names):
                raise UserError(f"this labelled.jsonl was written by classifiers {', '.join(found)}, not "
                                f"{', '.join(sorted(self.names))}", where=path, line=number,
                                fix="use another --output folder, or the same --classifier names as before")
            yield row

    @property
    def seen(self) -> set[str]:
        return {document.id for document in self.documents}

    def _add(self, row: dict) -> None:
        document = labelled_view(row)
        self.documents.append(document)
        self.counts.add(document)
        window = self.windowing.start_of(document.time)
        self.latest_window = window if self.latest_window is None else max(self.latest_window, window)

    def append(self, rows: list[dict]) -> None:
        if not rows:
            return
        if self._handle is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._handle = (self.folder / LABELLED).open("a", encoding="utf-8")
        self._handle.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))  # one write a chunk
        self._handle.flush()
        for row in rows:
            self._add(row)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()

    def write_windows(self) -> None:
        write_atomic(self.folder / WINDOWS, self.counts.csv_text().encode())

    def write_alerts(self, closed_before: datetime | None) -> list[dict]:
        alerts = evaluate_all(self.rules, self.documents, self.windowing, closed_before)
        write_jsonl(self.folder / ALERTS, alerts)
        return alerts


def labelled_rows(chunk: list[Document], classifiers: list[OpenedClassifier]) -> list[dict]:
    """labelled.jsonl's rows for a chunk: id, time (ISO 8601, UTC), the document's fields, each classifier's
    label and probabilities (`labels`, `probabilities`) or entities found (`entities`)."""
    fields = [document.fields for document in chunk]
    rows = [{"id": document.id, "time": iso(document.time), "document": document.fields, "labels": {},
             "probabilities": {}} for document in chunk]
    for classifier in classifiers:
        for row, result in zip(rows, classifier.label(fields)):
            if "entities" in result:
                row.setdefault("entities", {})[classifier.plan.name] = result["entities"]
            else:
                row["labels"][classifier.plan.name] = result["label"]
                row["probabilities"][classifier.plan.name] = result["probabilities"]
    return rows


def chunks(documents: Iterable[Document], size: int) -> Iterator[list[Document]]:
    iterator = iter(documents)
    while chunk := list(islice(iterator, size)):
        yield chunk


@dataclass
class MonitorRun:
    state: MonitorState
    reader: StreamReader
    classifiers: list[OpenedClassifier]
    chunk_size: int
    report: dict  # what the report says about the run: input, classifiers, window
    progress: Callable[[int], None] | None = None
    written: int = 0
    alerts: list[dict] = field(default_factory=list)  # as last written
    _reported_window: datetime | None = None

    def run(self, *, follow: bool, poll: float, stop: threading.Event) -> None:
        """Read and classify until the input is done; --follow: until `stop`, then one last read."""
        while True:
            stopping = stop.is_set()
            self._classify(self.reader.read(final=not follow), follow)
            if not follow or stopping or self.reader.ended:
                break
            stop.wait(poll)
        self.state.close()
        self.finish()

    def _classify(self, documents: Iterable[Document], follow: bool) -> None:
        for chunk in chunks(documents, self.chunk_size):
            self.state.append(labelled_rows(chunk, self.classifiers))
            self.state.write_windows()
            self.written += len(chunk)
            if self.progress:
                self.progress(len(chunk))
            if not follow:
                continue
            latest = self.state.latest_window
            if self._reported_window is not None and latest > self._reported_window:
                self.write_derived(closed_before=latest)  # a window closed
            self._reported_window = latest

    def write_derived(self, closed_before: datetime | None) -> None:
        self.alerts = self.state.write_alerts(closed_before)
        write_report(self.state.folder, self.state.documents, self.state.counts, self.alerts, self.state.rules,
                     {**self.report, "skipped": dict(self.reader.errors), "duplicates": self.reader.duplicates})

    def finish(self) -> None:
        self.state.write_windows()
        self.write_derived(closed_before=None)
