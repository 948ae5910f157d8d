"""Reading a document stream: JSONL/CSV/TSV files, a folder of them, or standard input; once, or following.

Each read takes the complete lines added since the last one, from every file (a folder's files in
name order, hidden ones skipped, files added meanwhile included) or from standard input, so the same
loop reads a finished file, a folder that receives new files and a file that keeps growing. A CSV/TSV
row is one line (no line breaks inside fields). A row without an id or with a bad timestamp is a
per-row error: counted, logged on stderr with its file and line, and skipped; an id already seen
(in this run, or in an earlier run's output) is skipped silently, so every document is classified once.

Timestamps: ISO 8601 (`2026-01-05T09:30:00Z`, `2026-01-05 09:30+01:00`, `2026-01-05`; no zone = UTC)
or epoch seconds (a number, or digits in a string; values above 1e11 are taken as milliseconds).
"""
from __future__ import annotations

import csv
import json
import os
import select
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, TextIO

from promptlab.errors import UserError

STDIN = "-"
SUFFIXES = {".jsonl": None, ".csv": ",", ".tsv": "\t"}  # suffix -> delimiter (None: JSON lines)
MILLISECONDS_ABOVE = 1e11  # epoch values this large are milliseconds (1e11 s is the year 5138)
LOGGED_ERRORS = 20  # per-row errors printed one by one; the rest are only counted


@dataclass(frozen=True)
class Document:
    id: str
    time: datetime  # aware, UTC
    fields: dict


class RowError(ValueError):
    """A row that cannot be a document (no id, bad timestamp, bad JSON): skipped, and counted by `kind`."""

    def __init__(self, kind: str, detail: str | None = None):
        super().__init__(detail or kind)
        self.kind = kind


def parse_time(value) -> datetime:
    """An ISO 8601 string or epoch seconds (milliseconds when above 1e11) as an aware UTC datetime."""
    if value is None or value == "":
        raise RowError("no timestamp")
    if isinstance(value, bool):
        raise RowError("bad timestamp", f"timestamp {value!r} is neither ISO 8601 nor epoch seconds")
    text = str(value).strip()
    try:
        epoch = float(text)
    except ValueError:
        epoch = None
    try:
        if epoch is not None:
            moment = datetime.fromtimestamp(epoch / 1000 if abs(epoch) > MILLISECONDS_ABOVE else epoch, timezone.utc)
        else:
            moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError):
        raise RowError("bad timestamp", f"timestamp {value!r} is neither ISO 8601 nor epoch seconds") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


# ---------------------------------------------------------------- where lines come from

@dataclass
class _FileLines:
    """The complete lines a file gained since the last read."""

    path: Path
    offset: int = 0
    line: int = 0
    header: list[str] | None = None

    def new_lines(self, *, final: bool) -> Iterator[tuple[int, str]]:
        """(line number, text) of each new complete line; `final`: a last line without a newline counts too."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:  # moved away since the folder was listed: what it held was read
            return
        whole = data if final else data[:data.rfind(b"\n") + 1]
        self.offset += len(whole)
        for raw in _lines(whole):
            self.line += 1
            yield self.line, raw


@dataclass
class _StdinLines:
    """Standard input's complete lines, as much as has arrived (all of it, when it is not a pipe or tty)."""

    stream: TextIO
    buffer: bytes = b""
    line: int = 0
    ended: bool = False

    def new_lines(self, *, final: bool) -> Iterator[tuple[int, str]]:
        try:
            descriptor = self.stream.fileno()
        except (AttributeError, OSError, ValueError):  # an in-memory stream: read it all
            descriptor = None
        if descriptor is None:
            text, self.ended = self.stream.read(), True
            self.buffer += text.encode() if isinstance(text, str) else text
        else:
            while not self.ended and select.select([descriptor], [], [], 0)[0]:
                data = os.read(descriptor, 1 << 16)
                self.ended = not data
                self.buffer += data
        cut = len(self.buffer) if self.ended or final else self.buffer.rfind(b"\n") + 1
        whole, self.buffer = self.buffer[:cut], self.buffer[cut:]
        for raw in _lines(whole):
            self.line += 1
            yield self.line, raw


def _lines(data: bytes) -> list[str]:
    """Only "\n" ends a line: str.splitlines() would also split texts holding U+0085 or U+2028."""
    lines = data.decode("utf-8", errors="replace").split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


# ---------------------------------------------------------------- the reader

@dataclass
class StreamReader:
    source: str  # a file, a folder, or '-'
    id_field: str
    time_field: str
    seen: set[str] = field(default_factory=set)  # ids classified already: skipped
    required: frozenset[str] = frozenset()  # fields the classifiers read: a row without one is skipped
    stdin: TextIO | None = None
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True)
    errors: Counter = field(default_factory=Counter)  # reason -> rows
    duplicates: int = 0
    _files: dict[Path, _FileLines] = field(default_factory=dict)
    _stdin: _StdinLines | None = None

    def __post_init__(self):
        if self.source == STDIN:
            self._stdin = _StdinLines(self.stdin or sys.stdin)
            return
        path = Path(self.source)
        if not path.exists():
            raise UserError("the input does not exist", where=path,
                            fix="pass a file, a folder of files, or - for standard input")
        if path.is_file() and path.suffix.lower() not in SUFFIXES:
            raise UserError(f"the input is a '{path.suffix}' file; monitor reads {', '.join(SUFFIXES)}", where=path,
                            fix="convert it to JSONL (one JSON object per line) or CSV")

    @property
    def ended(self) -> bool:
        """Standard input closed (files and folders never end: they may grow)."""
        return self._stdin is not None and self._stdin.ended

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def read(self, *, final: bool = True) -> Iterator[Document]:
        """The new documents since the last read; `final`: a last line without a newline is complete too."""
        for where, lines, delimiter in self._sources():
            for line, text in lines.new_lines(final=final):
                if not text.strip():
                    continue
                try:
                    document = self._document(self._fields(text, delimiter, lines))
                except RowError as error:
                    self._count_error(error, where, line)
                    continue
                if document is None:
                    continue
                if document.id in self.seen:
                    self.duplicates += 1
                    continue
                self.seen.add(document.id)
                yield document

    def _sources(self) -> Iterator[tuple[str, object, str | None]]:
        if self._stdin is not None:
            yield "<stdin>", self._stdin, None
            return
        path = Path(self.source)
        files = [path] if path.is_file() else sorted(
            child for child in path.iterdir()
            if child.is_file() and child.suffix.lower() in SUFFIXES and not child.name.startswith("."))
        for file in files:
            lines = self._files.setdefault(file, _FileLines(file))
            yield str(file), lines, SUFFIXES[file.suffix.lower()]

    def _fields(self, text: str, delimiter: str | None, lines) -> dict | None:
        if delimiter is None:
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                raise RowError("invalid JSON", f"invalid JSON ({error.msg}, column {error.colno})") from None
            if not isinstance(value, dict):
                raise RowError("not a JSON object")
            return value
        (cells,) = csv.reader([text], delimiter=delimiter)
        if lines.header is None:
            lines.header = cells
            return None
        if len(cells) != len(lines.header):
            raise RowError("wrong number of cells", f"{len(cells)} cells where the header has {len(lines.header)}")
        return dict(zip(lines.header, cells))

    def _document(self, fields: dict | None) -> Document | None:
        if fields is None:
            return None
        identifier = fields.get(self.id_field)
        if identifier is None or identifier == "":
            raise RowError("no id", f"no id (field '{self.id_field}')")
        missing = sorted(name for name in self.required if fields.get(name) is None)
        if missing:
            raise RowError("missing field", f"no field {', '.join(map(repr, missing))}, which a classifier reads")
        return Document(str(identifier), parse_time(fields.get(self.time_field)), fields)

    def _count_error(self, error: RowError, where: str, line: int) -> None:
        self.errors[error.kind] += 1
        if self.error_count <= LOGGED_ERRORS:
            self.log(f"monitor: {where}:{line}: skipped: {error}")
        elif self.error_count == LOGGED_ERRORS + 1:
            self.log("monitor: further skipped rows are counted, not shown")

