"""`promptlab serve`: load a model once, then answer HTTP requests (uvicorn), for every kind of task.

What answers is the task's row predictor, the one `predict` uses (promptlab.apply.answering): POST
/classify for a classifier, POST /entities for an entity task. `serve_forever` runs any of them.
"""
from __future__ import annotations

import importlib.util
import signal
import socket

import click

from promptlab.apply.answering import plan_rows
from promptlab.apply.predict import fix_prior
from promptlab.apply.rows import count_rows, input_rows
from promptlab.backends.batching import AUTO, AUTO_MICRO_BATCHES
from promptlab.catalog.catalog import Catalog
from promptlab.errors import UserError

SERVE_PACKAGES = ("uvicorn", "starlette")


def run_serve_command(*, task, template, verbalizer, model, trained, calibrate, aggregate, host, port, max_batch,
                      max_wait_ms, max_queue, limits, reject_below, batch_size, device, dtype, catalogs,
                      calibrate_on=None) -> None:
    require_serve_packages()
    plan = plan_rows(Catalog.from_options(catalogs), task=task, trained=trained, template=template,
                     verbalizer=verbalizer, model=model, calibrate=calibrate, aggregate=aggregate,
                     reject_below=reject_below)
    check_port_free(host, port)  # before the model loads, not after
    if calibrate_on is not None:
        count_rows(calibrate_on)  # read and checked before the model loads
    predictor = plan.load(device=device, dtype=dtype, batch_size=micro_batch_size(batch_size))
    fix_served_prior(predictor, calibrate_on)
    click.echo(f"serve: {predictor.summary} on http://{host}:{port} (POST {predictor.route}, GET /health, "
               "GET /info, GET /)", err=True)
    serve_forever(predictor, host=host, port=port, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue,
                  limits=limits)


def fix_served_prior(predictor, calibrate_on: str | None) -> None:
    """Batch calibration in serve divides out a prior fixed at start-up from the rows of --calibrate-on: a running
    prior over the traffic would let one client's requests move every other client's answers."""
    if predictor.fix_prior is None:
        if calibrate_on is not None:
            raise UserError("--calibrate-on applies only with --calibrate batch", fix="leave out --calibrate-on")
        return
    if calibrate_on is None:
        raise UserError("serve --calibrate batch needs --calibrate-on FILE: the prior it divides out is fixed at "
                        "start-up from those rows, since a prior over the traffic would let one client's requests "
                        "move every other client's answers",
                        fix="pass --calibrate-on with rows like the traffic's (e.g. the input of a predict run), "
                            "or another --calibrate")
    click.echo(f"serve: batch calibration: the prior is fixed from the rows of {calibrate_on}", err=True)
    fix_prior(predictor, input_rows(calibrate_on), source=calibrate_on)


def micro_batch_size(batch_size: int | str) -> int | str:
    """serve's --batch-size: 'auto' picks the size for micro-batches (promptlab.backends.batching)."""
    return AUTO_MICRO_BATCHES if batch_size == AUTO else batch_size


def require_serve_packages() -> None:
    """Before anything loads: serving needs the serve extra."""
    for package in SERVE_PACKAGES:
        if importlib.util.find_spec(package) is None:
            raise UserError(f"serve needs the packages of the serve extra ({package} is missing)",
                            fix="pip install 'promptlab[serve]'")


def check_port_free(host: str, port: int) -> None:
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as error:
        raise UserError(f"cannot listen on {host}:{port}: {error.strerror}",
                        fix="pass another --port, or stop what is using this one") from None


def serve_forever(service, *, host: str, port: int, max_batch: int, max_wait_ms: float, max_queue: int,
                  limits: dict, extra_routes=None) -> None:
    """`limits`: serve.Limits' fields; `extra_routes`: create_app's. Until SIGTERM or Ctrl-C: uvicorn then stops
    accepting, lets the requests in flight finish, and returns."""
    import uvicorn

    from promptlab.apply.serve import Limits, create_app

    app = create_app(service, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue,
                     limits=Limits(**limits), extra_routes=extra_routes)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again under the handler found at start:
    # with this one, a requested stop exits 0 instead of dying by the signal.
    signal.signal(signal.SIGTERM, lambda number, frame: None)
    uvicorn.run(app, host=host, port=port, log_level="warning")
