"""`promptlab serve` on entity tasks: POST /entities with raw text rows, answered with their spans.

The predictor is opened as `predict` opens it (promptlab.apply.entity_predictors: a --trained token-finetune or
entity-prompt artefact, else zero-shot entity-prompt) and each row's `text` is tokenised and tagged as
`predict` does it (promptlab.data.words), so a request gets the `entities` that `predict` writes for the
same rows: {"predictions": [{"entities": [{start, end, type, text, score}, ...]}, ...]}.
"""
from __future__ import annotations

import click

from promptlab.apply.rows import PLAIN_FIELD
from promptlab.catalog.catalog import Catalog
from promptlab.commands.serving import check_port_free, require_serve_packages, serve_forever
from promptlab.apply.entity_predict import describe
from promptlab.apply.entity_predictors import plan_predictor
from promptlab.data.words import entities_in_texts
from promptlab.errors import UserError

ROUTE = "/entities"


def run_serve_command(*, task, template, verbalizer, model, trained, calibrate, aggregate, host, port, max_batch,
                      max_wait_ms, max_queue, reject_below, batch_size, device, dtype, catalogs) -> None:
    require_serve_packages()
    plan = plan_predictor(Catalog.from_options(catalogs), task=task, trained=trained, template=template,
                          verbalizer=verbalizer, model=model, calibrate=calibrate, aggregate=aggregate)
    if reject_below is not None:
        raise UserError(f"--reject-below does not apply to entity task '{plan.task.name}'", fix="leave out --reject-below")
    check_port_free(host, port)  # before the model loads, not after
    predictor = plan.load(device=device, dtype=dtype)
    from promptlab.apply.serve import Service

    def answer(rows: list[dict], positions: list[int]) -> list[dict]:
        return [{"entities": entities}
                for entities in entities_in_texts(predictor.predict, [row[PLAIN_FIELD] for row in rows])]

    service = Service(ROUTE, frozenset({PLAIN_FIELD}), answer, {**predictor.info, "types": plan.task.labels})
    click.echo(f"serve: {describe(predictor)} on http://{host}:{port} (POST {ROUTE}, GET /health, GET /info)",
               err=True)
    serve_forever(service, host=host, port=port, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue)
