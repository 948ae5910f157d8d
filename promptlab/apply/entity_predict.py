"""`promptlab predict` on entity tasks: raw text in, spans with character offsets out (JSONL, in input order).

Each input row's `text` field (a plain-text line of standard input becomes one) is tokenised as
CoNLL-2003 is (promptlab.data.words) and tagged by a trained artefact (`--trained DIR/seed-N` of
token-finetune or entity-prompt) or, without one, by zero-shot entity-prompt with the task's template,
verbalizer and `--model` (promptlab.apply.entity_predictors). Every row comes out with its fields and
`entities`: a list of {start, end, type, text, score}, `end` exclusive.
"""
from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import click

from promptlab.apply.rows import PLAIN_FIELD, STDIN, input_rows
from promptlab.catalog.catalog import Catalog
from promptlab.apply.entity_predictors import Predictor, plan_predictor
from promptlab.data.words import entities_in_texts
from promptlab.errors import UserError
from promptlab.runtime.outputs import write_atomic

CHUNK = 32  # rows tagged together


def run_predict_command(*, task, template, verbalizer, model, trained, calibrate, aggregate, input_path, output,
                        output_format_name, top_k, batch_size, device, dtype, catalogs, resume, reject_below=None) -> None:
    plan = plan_predictor(Catalog.from_options(catalogs), task=task, trained=trained, template=template,
                          verbalizer=verbalizer, model=model, calibrate=calibrate, aggregate=aggregate)
    for flag, value in (("--format csv", output_format_name == "csv"), ("--top-k", top_k), ("--resume", resume),
                        ("--reject-below", reject_below)):
        if value:
            raise UserError(f"{flag} does not apply to entity task '{plan.task.name}'", fix=f"leave out {flag}")
    predictor = plan.load(device=device, dtype=dtype)
    click.echo(f"predict: {describe(predictor)}", err=True)
    started, written = time.perf_counter(), 0
    with _jsonl_output(output) as write:
        chunk = []
        for row in input_rows(input_path):
            if not isinstance(row.fields.get(PLAIN_FIELD), str):
                raise UserError(f"row {row.position + 1} has no text field '{PLAIN_FIELD}'",
                                where=input_path if input_path != STDIN else "<stdin>", line=row.line,
                                fix='give every row a "text", e.g. {"text": "Japan beat Syria in Al Ain."}')
            chunk.append(row.fields)
            if len(chunk) == CHUNK:
                written += _tag(predictor.predict, chunk, write)
                chunk = []
        written += _tag(predictor.predict, chunk, write)
    click.echo(f"predict: {written} rows in {time.perf_counter() - started:.1f} s", err=True)


def describe(predictor: Predictor) -> str:
    """One line: task, method, artefact or model, template (entity-prompt)."""
    info = predictor.info
    return " · ".join(str(part) for part in (
        info["task"], info["method"], info["trained"] or info["model"], info.get("template")) if part)


def _tag(predict, rows: list[dict], write) -> int:
    for fields, entities in zip(rows, entities_in_texts(predict, [fields[PLAIN_FIELD] for fields in rows])):
        write({**fields, "entities": entities})
    return len(rows)


@contextmanager
def _jsonl_output(target: str):
    """Rows to standard output as they come, or to a file written atomically at the end."""
    if target == STDIN:
        yield lambda row: (sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n"), sys.stdout.flush())
        return
    lines: list[str] = []
    yield lambda row: lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    write_atomic(Path(target), "".join(lines).encode())
