"""`predict`'s loop, for every kind of task: read rows, answer them a chunk at a time, append each chunk's rows.

Every output row is its input row's fields, then the prediction (promptlab.apply.answering: `label`,
`probabilities` and, with top_k, `top` for a classifier; `entities` for an entity task); a prediction
key that an input field also uses replaces it. Output goes to JSONL or CSV (nested values as JSON
text; a classifier's probabilities as one `p_<label>` column per label). Each chunk is written with
one write and flushed, so an interrupted run leaves whole rows; `resume` cuts a torn last line,
checks that the file continues this input, and skips the rows already written. Beside an output file,
`<file>.weights.json` records the weights that wrote it (model, fingerprint, dtype, trained artefact): a
resume that would load other weights or another precision is refused, so no file mixes them.
"""
from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator, TextIO

# prediction: callers that format a classifier's answer find it here too
from promptlab.apply.answering import RowLayout, RowPredictor, prediction  # noqa: F401
from promptlab.apply.rows import STDIN, InputRow, check_row_fields
from promptlab.errors import UserError
from promptlab.runtime.outputs import write_json

FORMATS = ("jsonl", "csv")
WEIGHTS_KEYS = ("model", "model_fingerprint", "dtype", "trained")  # of a row predictor's info


def output_row(fields: dict, predicted: dict, keys: tuple[str, ...]) -> dict:
    """The input fields, less any named like a prediction key, then the prediction."""
    return {**{key: value for key, value in fields.items() if key not in keys}, **predicted}


def output_format(target: str, given: str | None) -> str:
    """--format, else the output file's suffix (.csv is csv), else jsonl."""
    if given:
        return given
    return "csv" if target != STDIN and Path(target).suffix.lower() == ".csv" else "jsonl"


@dataclass
class OutputFile:
    """Appends whole rows to a file (or stdout); on resume, first counts and checks the rows there."""

    target: str
    format: str
    layout: RowLayout  # the prediction's keys (the rest of a row are its input fields) and CSV columns
    resume: bool = False
    done: int = 0  # rows already in the file when resuming
    _columns: list[str] | None = None
    _last_written: dict | None = field(default=None, repr=False)
    _handle: TextIO | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.target == STDIN:
            if self.resume:
                raise UserError("--resume needs an output file, not standard output", fix="pass --output FILE")
            self._handle = sys.stdout
            return
        path = Path(self.target)
        if path.is_dir():
            raise UserError("--output is a folder; predict writes one file", where=path, fix="name a file in it")
        if path.exists() and path.stat().st_size and not self.resume:
            raise UserError("the output file exists", where=path,
                            fix="pass --resume to continue it, or remove it, or name another file")
        if self.resume and path.exists():
            self._read_existing(path)

    def _read_existing(self, path: Path) -> None:
        text = path.read_text(encoding="utf-8")
        whole = text[:text.rfind("\n") + 1]  # a torn last line (an interrupted write) is cut
        if len(whole) != len(text):
            with path.open("r+", encoding="utf-8") as handle:
                handle.truncate(len(whole.encode("utf-8")))
        if self.format == "jsonl":
            rows = [json.loads(line) for line in whole.splitlines() if line.strip()]
        else:
            records = list(csv.DictReader(io.StringIO(whole, newline="")))
            self._columns = list(records[0]) if records else None
            rows = records
        self.done = len(rows)
        self._last_written = rows[-1] if rows else None

    def record_weights(self, info: dict) -> None:
        """Beside an output file, which weights write it; a resumed file must have been written by the same."""
        if self.target == STDIN:
            return
        weights = {key: info.get(key) for key in WEIGHTS_KEYS}
        record = Path(f"{self.target}.weights.json")
        if self.done:
            before = json.loads(record.read_text(encoding="utf-8")) if record.exists() else None
            if before != weights:
                differ = (", ".join(f"{key} {before.get(key)} then, {weights[key]} now" for key in WEIGHTS_KEYS
                                    if before.get(key) != weights[key]) if before else f"{record.name} is missing")
                raise UserError(f"the output was not written by the weights this run loads ({differ}); resuming "
                                "would mix their answers in one file", where=self.target,
                                fix="resume with the same model, --dtype and --trained, or remove the file")
            return
        write_json(record, weights)

    def check_continues(self, row: InputRow) -> None:
        """The last row written must hold the input fields of input row `done - 1`."""
        written = self._last_written
        expected = {key: value for key, value in row.fields.items() if key not in self.layout.keys}
        if self.format == "csv":
            expected = self._plain(expected)
        if written is None or any(written.get(key) != value for key, value in expected.items()):
            raise UserError(f"the output's row {self.done} does not match input row {self.done}: it is not this "
                            f"input's output", where=self.target, fix="remove the file, or resume with its own input")

    def write(self, rows: list[dict]) -> None:
        if not rows:
            return
        text = self._jsonl(rows) if self.format == "jsonl" else self._csv(rows)
        if self._handle is None:  # opened at the first rows: a run that fails earlier leaves no file
            path = Path(self.target)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = path.open("a", encoding="utf-8", newline="")
        self._handle.write(text)  # one write per chunk: an interruption loses whole chunks, not half rows
        self._handle.flush()

    def _jsonl(self, rows: list[dict]) -> str:
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)

    def _csv(self, rows: list[dict]) -> str:
        flat = [self._flatten(row) for row in rows]
        buffer = io.StringIO(newline="")
        header = self._columns is None
        if header:
            self._columns = list(flat[0])
        writer = csv.DictWriter(buffer, self._columns, lineterminator="\n")
        if header:
            writer.writeheader()
        for number, row in enumerate(flat):
            extra = set(row) - set(self._columns)
            if extra:
                raise UserError(f"an input row has field(s) {', '.join(sorted(extra))} that the first row has not; "
                                f"CSV needs the same columns in every row", fix="pass --format jsonl")
            writer.writerow(row)
        return buffer.getvalue()

    def _flatten(self, row: dict) -> dict:
        fields = {key: value for key, value in row.items() if key not in self.layout.keys}
        flat = {key: json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value
                for key, value in fields.items()}
        return {**flat, **self.layout.columns({key: row[key] for key in self.layout.keys if key in row})}

    @staticmethod
    def _plain(fields: dict) -> dict:
        """Input fields as the CSV reader gives them back."""
        return {key: "" if value is None else json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list))
                else str(value) for key, value in fields.items()}

    def close(self) -> None:
        if self._handle is not None and self._handle is not sys.stdout:
            self._handle.close()


def chunks(rows: Iterable[InputRow], size: int) -> Iterator[list[InputRow]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def fix_prior(predictor: RowPredictor, rows: Iterable[InputRow], *, source: str, keep_scores: bool = False) -> None:
    """Batch calibration's first pass over a whole file: every row scored once, in zeroshot's batches, to fix the
    prior (then `run_predict` answers them all, those a resumed file already holds included in the prior), so the
    labels equal `zeroshot --calibrate batch`'s and do not depend on chunks or on where a run was resumed.
    `keep_scores`: the rows' scores are kept for `run_predict` over the same file, which then scores nothing again
    (the file's rows and scores are held in memory, as `zeroshot` holds them)."""
    rows = list(rows)
    for row in rows:
        check_row_fields(row, predictor.fields, predictor.reader, source, text=predictor.text_fields)
    predictor.fix_prior([row.fields for row in rows], [row.position for row in rows], keep_scores=keep_scores)


def run_predict(predictor: RowPredictor, rows: Iterable[InputRow], output: OutputFile, *, source: str,
                progress=None) -> int:
    """Answer `rows` into `output`, skipping the ones it already holds; the number of rows written now."""
    rows = iter(rows)
    if output.done:
        skipped = list(islice(rows, output.done))
        if len(skipped) < output.done:
            raise UserError(f"the output already holds {output.done} rows, more than the input's {len(skipped)}",
                            where=output.target, fix="remove the file, or resume with its own input")
        output.check_continues(skipped[-1])
        if progress:
            progress(output.done)
    written = 0
    for chunk in chunks(rows, predictor.chunk_size):
        for row in chunk:
            check_row_fields(row, predictor.fields, predictor.reader, source, text=predictor.text_fields)
        answers = predictor.answer([row.fields for row in chunk], [row.position for row in chunk])
        output.write([output_row(row.fields, answer, predictor.layout.keys) for row, answer in zip(chunk, answers)])
        written += len(chunk)
        if progress:
            progress(len(chunk))
    return written
