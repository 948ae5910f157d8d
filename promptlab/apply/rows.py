"""Rows to classify: a JSONL/JSON/CSV/TSV file, a .txt file (one plain text per line), or standard input
(JSONL, or one plain text per line).

Rows are yielded with their line numbers, so a row missing a field the template reads is named
by file and line. Labels are not read: a column named like the task's label field is kept as an
ordinary field. Standard input is read line by line, so `predict` answers a pipe as it flows.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, TextIO

from promptlab.data.readers import read_rows
from promptlab.errors import UserError
from promptlab.catalog.template import Template

STDIN = "-"
PLAIN_SUFFIX = ".txt"  # a file of plain texts, one per line, as standard input may be
PLAIN_FIELD = "text"  # the field a plain-text line becomes


@dataclass(frozen=True)
class InputRow:
    fields: dict
    line: int | None  # 1-based line in the input, where lines are meaningful
    position: int  # 0-based position among the rows


def input_rows(source: str, *, stream: TextIO | None = None) -> Iterator[InputRow]:
    """The rows of `source` (a path, or '-' for `stream`, standard input by default)."""
    if source == STDIN:
        yield from _stream_rows(stream or sys.stdin)
        return
    if Path(source).suffix == PLAIN_SUFFIX:
        with Path(source).open(encoding="utf-8", newline="") as lines:
            yield from _stream_rows(lines, as_json=False)
        return
    for position, (fields, line) in enumerate(read_rows(Path(source))):
        yield InputRow(fields, line, position)


def count_rows(source: str) -> int | None:
    """How many rows a file holds (for progress); None for standard input."""
    if source == STDIN:
        return None
    if Path(source).suffix == PLAIN_SUFFIX:
        return sum(1 for _ in input_rows(source))
    return len(read_rows(Path(source)))


def _stream_rows(stream: TextIO, as_json: bool | None = None) -> Iterator[InputRow]:
    """JSONL when the first non-blank line is a JSON object (unless `as_json` says), else every line is one plain
    text."""
    position = 0
    for number, text in enumerate(stream, start=1):
        text = text.rstrip("\r\n")
        if not text.strip():
            continue
        if as_json is None:
            as_json = text.lstrip().startswith("{") and _is_object(text)
        yield InputRow(_json_row(text, number) if as_json else {PLAIN_FIELD: text}, number, position)
        position += 1


def _is_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False


def _json_row(text: str, number: int) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"invalid JSON: {error.msg} (column {error.colno})", where="<stdin>", line=number,
                        fix='standard input is JSONL (one object per line, e.g. {"text": "..."}) when its first '
                            'line is, else one plain text per line') from None
    if not isinstance(value, dict):
        raise UserError("this line is not a JSON object", where="<stdin>", line=number,
                        fix='write one object per line, e.g. {"text": "..."}')
    return value


def check_fields(row: InputRow, template: Template, source: str) -> None:
    """A row lacking a field the template reads is a UserError naming the row and the field."""
    check_row_fields(row, frozenset(template.fields), f"template '{template.name}'", source)


def check_row_fields(row: InputRow, fields: frozenset[str], reader: str, source: str, *, text: bool = False) -> None:
    """A row lacking a field `reader` reads (with `text`: or holding one that is not a string) is a UserError
    naming the row and the field."""
    where = "<stdin>" if source == STDIN else source
    missing = sorted(name for name in fields if name not in row.fields)
    if missing:
        raise UserError(f"row {row.position + 1} has no field {', '.join(map(repr, missing))}, which {reader} "
                        f"reads; fields present: {', '.join(sorted(map(str, row.fields))) or 'none'}",
                        where=where, line=row.line,
                        fix=f"add the field to every row, or rename the column to {missing[0]!r}")
    for name in sorted(fields) if text else ():
        if not isinstance(row.fields[name], str):
            raise UserError(f"row {row.position + 1}: field {name!r} is {type(row.fields[name]).__name__}, not a "
                            f"string, which {reader} needs", where=where, line=row.line,
                            fix=f'give {name!r} as a string, e.g. {{"{name}": "Japan beat Syria in Al Ain."}}')
