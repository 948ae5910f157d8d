"""`promptlab assist` and `promptlab serve --answers NAME --knowledge PATH`: the assistant (promptlab.apply.assist).

Both open the router as `predict` does (a --trained text artefact, or a zero-shot setup), the task's
answer file (`--answers`, like `--template`) and the knowledge base's index (built once into the
cache). Every file is read and checked before any model loads.
"""
from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import click

from promptlab.apply.registry import check_trained, open_classifier
from promptlab.apply.rows import STDIN, input_rows
from promptlab.catalog.answers import PATHS
from promptlab.catalog.catalog import Catalog, Setup
from promptlab.commands.serving import check_port_free, micro_batch_size, require_serve_packages, serve_forever
from promptlab.data.knowledge import read_knowledge
from promptlab.errors import UserError
from promptlab.methods.artefacts import load_trained
from promptlab.runtime.outputs import write_atomic

CHUNK = 64  # rows routed together


def open_assistant(*, task, template, verbalizer, model, trained, calibrate, aggregate, answers, knowledge, encoder,
                   intent_threshold, retrieval_threshold, top_passages, batch_size, device, dtype, catalogs):
    """(setup, opened router, assistant); the files are checked before the models load."""
    from promptlab.apply.assist import Assistant, check_thresholds
    from promptlab.apply.knowledge_index import open_index

    check_thresholds(intent_threshold, retrieval_threshold)
    if knowledge is None:
        raise UserError("the assistant needs a knowledge base", fix="pass --knowledge FILE.jsonl|FILE.csv|FOLDER")
    catalog = Catalog.from_options(catalogs)
    saved = load_trained(trained) if trained else None
    setup = Setup.for_run(catalog, task, template, verbalizer, saved=saved)
    if setup.task.kind != "classification":
        raise UserError(f"the assistant routes text intents; task '{setup.task.name}' is a {setup.task.kind} task",
                        fix="pass a text classification task or artefact")
    answer_file = catalog.answers(setup.task, answers)
    check_trained(saved, setup, calibrate=calibrate, aggregate=aggregate, model=model)
    knowledge = knowledge_path(catalog, setup.task.name, knowledge)
    read_knowledge(knowledge)
    opened = open_classifier(setup, saved, model=model, device=device, dtype=dtype, calibrate=calibrate,
                             aggregate=aggregate, batch_size=batch_size, stream=True)
    index = open_index(knowledge, encoder=encoder, device=device)
    assistant = Assistant(answer_file, index, intent_threshold, retrieval_threshold, top_passages)
    click.echo(f"assist: {setup.task.name} · router {saved.method if saved else 'zero-shot'} "
               f"({opened.loaded.name}) · answers {answer_file.name} · knowledge {len(index.passages)} passages "
               f"({index.kind} search, {index.encoder.name}) · thresholds intent {intent_threshold:g}, retrieval "
               f"{retrieval_threshold:g}", err=True)
    return setup, opened, assistant


def knowledge_path(catalog: Catalog, task: str, knowledge: str) -> Path:
    """--knowledge: a path, else a file or folder of that name beside the task's answer files (the last catalog's)."""
    given = Path(knowledge).expanduser()
    if given.exists():
        return given
    beside = [root / "answers" / task / knowledge for root in catalog.roots]
    found = [path for path in beside if path.exists()]
    if not found:
        raise UserError(f"no knowledge base '{knowledge}' here or in answers/{task}/ of the catalogs",
                        fix="pass a JSONL/CSV file or a folder of Markdown files, e.g. --knowledge knowledge.jsonl "
                            f"for answers/{task}/knowledge.jsonl")
    return found[-1]


def run_assist_command(*, input_path, output, **options) -> None:
    setup, opened, assistant = open_assistant(**options)
    labels = setup.task.labels
    rows = list(input_rows(input_path))
    started = time.perf_counter()
    lines, paths = [], Counter()
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        fields = [row.fields for row in chunk]
        for row in chunk:
            if "text" not in row.fields:
                raise UserError(f"row {row.position + 1} has no field 'text'", where=input_path, line=row.line,
                                fix="give every row the message as 'text'")
        logprobs = opened.classifier.logprobs(fields, positions=[row.position for row in chunk])
        probabilities = [dict(zip(labels, row.exp().tolist())) for row in logprobs]
        where = [f" {row.position + 1}" + (f" (line {row.line})" if row.line else "") for row in chunk]
        for row, reply in zip(fields, assistant.reply(fields, probabilities, where=where)):
            paths[reply["path"]] += 1
            lines.append(json.dumps({**{k: v for k, v in row.items() if k not in reply}, **reply},
                                    ensure_ascii=False))
    text = "".join(line + "\n" for line in lines)
    if output == STDIN:
        sys.stdout.write(text)
    else:
        write_atomic(Path(output), text.encode())
    click.echo(f"assist: {len(lines)} messages in {time.perf_counter() - started:.1f} s: "
               + ", ".join(f"{paths[path]} {path}" for path in PATHS), err=True)


def run_assist_serve_command(*, host, port, max_batch, max_wait_ms, max_queue, limits, reject_below,
                             **options) -> None:
    require_serve_packages()
    if reject_below is not None:
        raise UserError("--reject-below does not apply with --answers: the assistant's --intent-threshold does that",
                        fix="leave out --reject-below")
    check_port_free(host, port)
    setup, opened, assistant = open_assistant(**{**options, "batch_size": micro_batch_size(options["batch_size"])})
    from promptlab.apply.assist_routes import ROUTE, reply_routes
    from promptlab.apply.serve import classifier_service

    info = {**setup.describe(), **opened.describe(), "assistant": assistant.describe()}
    service = classifier_service(opened.classifier, info)
    click.echo(f"serve: the assistant on http://{host}:{port} (GET / to try it, POST {ROUTE}, POST /classify, "
               "GET /health, GET /info)", err=True)
    serve_forever(service, host=host, port=port, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue,
                  limits=limits, extra_routes=reply_routes(assistant, service.fields, max_queue=max_queue))
