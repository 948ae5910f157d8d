"""Loading labelled (or unlabelled) examples from files, registered sources and hub data sets.

A data spec is one of:
- a path to a `.jsonl`, `.json` (a list of objects), `.csv` or `.tsv` file, relative to `base_dir`;
- `source:NAME/SPLIT`, a registered offline source (see `promptlab.data.sources`);
- a mapping `{dataset, config?, split, columns?, data_files?}` passed to `datasets.load_dataset`.

Every example is a dict of the row's columns plus `id` (a string) and `label` (a label name of
the task, or None for an unlabelled row). Labels may be written as names or as 0-based indices.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from promptlab.data import sources
from promptlab.errors import UserError, did_you_mean

SOURCE_PREFIX = "source:"
FILE_TYPES = (".jsonl", ".json", ".csv", ".tsv")
HUB_KEYS = ("dataset", "config", "split", "columns", "data_files")
LABEL_FIX_EXAMPLE = '{"text": "a fine film", "label": "positive"}'


class Example(dict):
    """One example's fields, remembering where it came from for error messages."""

    def __init__(self, fields: dict, *, origin: str, line: int | None, row: int):
        super().__init__(fields)
        self.origin = origin  # the file, or a description of the data set
        self.line = line  # 1-based line in the file, where lines are meaningful
        self.row = row  # 0-based position among the examples

    @property
    def place(self) -> str:
        return f"line {self.line}" if self.line else f"row {self.row + 1}"


Row = tuple[dict, int | None]  # the fields of one row, and its line in the file when known


def load_examples(spec: Any, *, base_dir: Path, labels: list[str], label_field: str = "label",
                  id_field: str = "id", where: str | Path | None = None) -> list[dict]:
    """Load examples from a data spec; `where` (the file the spec was written in) locates spec errors."""
    if isinstance(spec, Mapping):
        origin, rows = _read_hub_dataset(spec, base_dir=base_dir, label_field=label_field, where=where)
    elif isinstance(spec, str) and spec.startswith(SOURCE_PREFIX):
        path = source_split_path(spec, where=where)
        origin, rows = str(path), read_jsonl(path)
    elif isinstance(spec, (str, Path)):
        path = Path(base_dir) / spec
        origin, rows = str(path), _read_file(path)
    else:
        raise UserError(f"data must be a file path, 'source:NAME/SPLIT' or a dataset mapping, not {spec!r}",
                        where=where, fix="for example: data: data/test.jsonl")
    return labelled_examples(rows, origin=origin, labels=labels, label_field=label_field, id_field=id_field)


def labelled_examples(rows: list[Row], *, origin: str, labels: list[str], label_field: str = "label",
                      id_field: str = "id") -> list[dict]:
    """Rows read from anywhere (a file, or a list in code) as examples: ids, and labels as names."""
    if not rows:
        raise UserError("no examples in the data", where=origin,
                        fix=f"add at least one example, e.g. {LABEL_FIX_EXAMPLE}")
    examples = [_to_example(fields, line, row, origin=origin, labels=labels, label_field=label_field,
                            id_field=id_field) for row, (fields, line) in enumerate(rows)]
    _check_unique_ids(examples)
    return examples


def load_task_examples(spec: Any, *, base_dir: Path, task, where: str | Path | None = None) -> list[dict]:
    """The reader of classification tasks (promptlab.kinds): labelled text rows."""
    return load_examples(spec, base_dir=base_dir, labels=task.labels, label_field=task.label_field,
                         id_field=task.id_field, where=where)


# ---------------------------------------------------------------- labels and ids

def _to_example(fields: dict, line: int | None, row: int, *, origin: str, labels: list[str],
                label_field: str, id_field: str) -> Example:
    example = Example(fields, origin=origin, line=line, row=row)
    given_id = fields.get(id_field)
    example["id"] = str(row) if given_id is None or given_id == "" else str(given_id)
    try:
        example["label"] = _label_name(fields.get(label_field), labels)
    except ValueError:
        value = fields[label_field]
        hint = did_you_mean(str(value), labels)
        hint = "" if hint.startswith(("choose", "none")) else " " + hint
        raise UserError(f"example id {example['id']} ({example.place}): label {value!r} is not a label "
                        f"of this task", where=origin, line=line,
                        fix=f"use one of the labels {', '.join(labels)} or its 0-based index{hint}") from None
    return example


def _label_name(value: Any, labels: list[str]) -> str | None:
    """The label name a value stands for: a name, or an index into `labels` (names win a tie)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        # JSON true/false name the labels "true"/"false" (or "True"/"False"), never indices 1/0.
        for text in (str(value).lower(), str(value)):
            if text in labels:
                return text
        raise ValueError(value)
    text = str(value).strip()
    if text in labels:
        return text
    index = _as_index(value)
    if index is not None and 0 <= index < len(labels):
        return labels[index]
    raise ValueError(value)


def _as_index(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value)
    return None


def _check_unique_ids(examples: list[Example]) -> None:
    first_place: dict[str, str] = {}
    for example in examples:
        if example["id"] in first_place:
            raise UserError(f"example id {example['id']} appears twice ({first_place[example['id']]} "
                            f"and {example.place})", where=example.origin, line=example.line,
                            fix="give every example its own id")
        first_place[example["id"]] = example.place


# ---------------------------------------------------------------- files

def read_rows(path: Path) -> list[Row]:
    """The rows of a data file as they are (fields and line), without ids or labels: for unlabelled input."""
    return _read_file(path)


def _read_file(path: Path) -> list[Row]:
    suffix = path.suffix.lower()
    if suffix not in FILE_TYPES:
        raise UserError(f"unsupported data file type '{path.suffix or '(none)'}'", where=path,
                        fix=f"use one of: {', '.join(FILE_TYPES)}")
    readers = {".jsonl": read_jsonl, ".json": _read_json, ".csv": _read_csv, ".tsv": _read_tsv}
    return readers[suffix](path)


def read_text(path: Path) -> str:
    if not path.exists():
        raise UserError("data file not found", where=path,
                        fix="check the path; relative paths are read from the folder of the file that names them")
    if path.is_dir():
        raise UserError("this is a folder, not a data file", where=path, fix="name a file inside it")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UserError(f"cannot read data file: {error.strerror}", where=path,
                        fix="check the file's permissions") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise UserError(f"not valid UTF-8: byte 0x{data[error.start]:02X} at offset {error.start} "
                        f"({error.reason})", where=path, line=line,
                        fix="re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 in.csv > out.csv)") from None


def read_jsonl(path: Path, *, example: str = LABEL_FIX_EXAMPLE) -> list[Row]:
    """The objects of a JSONL file with their lines; `example` shows a good line in error messages."""
    rows = []
    # Only "\n" ends a JSON line: str.splitlines() would also split texts holding U+0085 or U+2028.
    for number, text in enumerate(read_text(path).split("\n"), start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise UserError(f"invalid JSON: {error.msg} (column {error.colno})", where=path, line=number,
                            fix=f"each line must be one JSON object, e.g. {example}") from None
        if not isinstance(value, dict):
            raise UserError(f"this line is a JSON {_json_type(value)}, not an object", where=path, line=number,
                            fix=f"each line must be one JSON object, e.g. {example}")
        rows.append((value, number))
    return rows


def _read_json(path: Path) -> list[Row]:
    try:
        value = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise UserError(f"invalid JSON: {error.msg} (column {error.colno})", where=path, line=error.lineno,
                        fix="a .json data file holds one list of objects") from None
    if not isinstance(value, list):
        raise UserError(f"the file holds a JSON {_json_type(value)}, not a list of objects", where=path,
                        fix=f"write [{LABEL_FIX_EXAMPLE}, ...], or one object per line in a .jsonl file")
    for number, item in enumerate(value, start=1):
        if not isinstance(item, dict):
            raise UserError(f"item {number} of the list is a JSON {_json_type(item)}, not an object",
                            where=path, fix=f"every item must be an object, e.g. {LABEL_FIX_EXAMPLE}")
    return [(item, None) for item in value]


def _json_type(value: Any) -> str:
    names = {list: "list", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _read_csv(path: Path) -> list[Row]:
    return _read_delimited(path, ",")


def _read_tsv(path: Path) -> list[Row]:
    return _read_delimited(path, "\t")


def _read_delimited(path: Path, delimiter: str) -> list[Row]:
    reader = csv.reader(io.StringIO(read_text(path), newline=""), delimiter=delimiter)
    try:
        header = next(reader, None)
        if header is None:
            return []
        _check_header(header, path)
        rows, last_line = [], reader.line_num
        for cells in reader:
            first_line, last_line = last_line + 1, reader.line_num
            if not cells:
                continue  # a blank line
            if len(cells) != len(header):
                raise UserError(f"this row has {len(cells)} cells but the header has {len(header)} columns",
                                where=path, line=first_line,
                                fix="quote cells that contain the delimiter or line breaks, and give every "
                                    "row one cell per column")
            rows.append((dict(zip(header, cells)), first_line))
    except csv.Error as error:
        raise UserError(f"cannot parse as {path.suffix.lstrip('.').upper()}: {error}", where=path,
                        line=reader.line_num, fix="check the quoting on that line") from None
    return rows


def _check_header(header: list[str], path: Path) -> None:
    seen = set()
    for column in header:
        if not column.strip():
            raise UserError("the header row has an empty column name", where=path, line=1,
                            fix="the first row must name every column, e.g. text,label")
        if column in seen:
            raise UserError(f"column '{column}' appears twice in the header", where=path, line=1,
                            fix="give every column its own name")
        seen.add(column)


# ---------------------------------------------------------------- sources and hub data sets

def source_split_path(spec: str, *, where: str | Path | None) -> Path:
    name, slash, split = spec[len(SOURCE_PREFIX):].partition("/")
    if not slash or not name or not split:
        raise UserError(f"'{spec}' does not name a source and a split", where=where,
                        fix=f"write it as {SOURCE_PREFIX}{name or 'mr'}/test")
    return sources.split_path(name, split, where=where)


def _read_hub_dataset(spec: Mapping, *, base_dir: Path, label_field: str,
                      where: str | Path | None) -> tuple[str, list[Row]]:
    check_hub_spec(spec, where=where)
    name, config, split = spec["dataset"], spec.get("config"), spec["split"]
    columns = dict(spec.get("columns") or {})
    origin = f"dataset '{name}'" + (f" config '{config}'" if config else "") + f" split '{split}'"
    dataset = load_hub_split(name, config, split, resolve_data_files(spec.get("data_files"), base_dir),
                            origin=origin, where=where)
    _check_columns(columns, list(dataset.column_names), origin=origin, where=where)
    label_names = _class_label_names(dataset, columns, label_field)
    rows = []
    for record in dataset:
        fields = {columns.get(column, column): value for column, value in record.items()}
        if label_names is not None and isinstance(fields.get(label_field), int):
            index = fields[label_field]
            # Hub test splits mark missing labels with -1.
            fields[label_field] = label_names[index] if index >= 0 else None
        rows.append((fields, None))
    return origin, rows


def check_hub_spec(spec: Mapping, *, where: str | Path | None) -> None:
    for key in spec:
        if key not in HUB_KEYS:
            raise UserError(f"unknown dataset key '{key}'", where=where, line=_line_of(spec, key),
                            fix=did_you_mean(str(key), HUB_KEYS))
    for key in ("dataset", "split"):
        if not isinstance(spec.get(key), str) or not spec[key]:
            raise UserError(f"a dataset mapping needs '{key}:' (a name)", where=where, line=_line_of(spec, key),
                            fix="for example: {dataset: glue, config: sst2, split: validation}")
    columns = spec.get("columns")
    if columns is not None and not (isinstance(columns, Mapping)
                                    and all(isinstance(k, str) and isinstance(v, str) for k, v in columns.items())):
        raise UserError("'columns:' must map dataset column names to field names", where=where,
                        line=_line_of(spec, "columns"), fix="for example: columns: {sentence: text}")


def _line_of(spec: Mapping, key: str) -> int | None:
    line_of = getattr(spec, "line_of", None)  # YAML mappings from promptlab.catalog.yamlfile know their lines
    return line_of(key) if line_of else None


def resolve_data_files(data_files: Any, base_dir: Path) -> Any:
    """Make relative data file paths relative to `base_dir`, as every other data path is."""
    if data_files is None:
        return None
    if isinstance(data_files, str):
        return str(Path(base_dir) / data_files)
    if isinstance(data_files, Mapping):
        return {split: resolve_data_files(files, base_dir) for split, files in data_files.items()}
    return [resolve_data_files(files, base_dir) for files in data_files]


def load_hub_split(name: str, config: str | None, split: str, data_files: Any, *, origin: str,
                  where: str | Path | None):
    import datasets  # slow to import; only hub-style specs need it

    try:
        return datasets.load_dataset(name, config, split=split, data_files=data_files)
    except Exception as error:  # datasets raises many types, all meaning "could not load this"
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"cannot load {origin}: {reason}", where=where,
                        fix="check the dataset name, config and split; hub data sets need network access "
                            "(offline, use a local .jsonl/.csv file or a 'source:NAME/SPLIT')") from None


def _check_columns(columns: dict[str, str], available: list[str], *, origin: str,
                   where: str | Path | None) -> None:
    for column, target in columns.items():
        if column not in available:
            raise UserError(f"{origin} has no column '{column}'", where=where,
                            fix=did_you_mean(column, available) + f" (columns: {', '.join(available)})")
        if target in available and target not in columns:
            raise UserError(f"cannot rename column '{column}' to '{target}': {origin} already has a "
                            f"column '{target}'", where=where, fix=f"also map '{target}' to another name")


def _class_label_names(dataset, columns: dict[str, str], label_field: str) -> list[str] | None:
    """The names of a ClassLabel label column, so integer labels can be read as names."""
    renamed_from = {target: column for column, target in columns.items()}
    feature = dataset.features.get(renamed_from.get(label_field, label_field))
    return list(feature.names) if hasattr(feature, "names") else None
