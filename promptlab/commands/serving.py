"""`promptlab serve`: load a model once, then answer HTTP requests (uvicorn); text classifiers here.

`serve_forever` runs any `promptlab.apply.serve.Service` (entity tasks: promptlab.apply.entity_serve).
"""
from __future__ import annotations

import importlib.util
import socket

import click

from promptlab.methods.artefacts import load_trained
from promptlab.apply.registry import check_trained, open_classifier
from promptlab.catalog.catalog import Catalog, Setup
from promptlab.errors import UserError

SERVE_PACKAGES = ("uvicorn", "starlette")


def run_serve_command(*, task, template, verbalizer, model, trained, calibrate, aggregate, host, port, max_batch,
                      max_wait_ms, max_queue, reject_below, batch_size, device, dtype, catalogs) -> None:
    require_serve_packages()
    saved = load_trained(trained) if trained else None
    setup = Setup.for_run(Catalog.from_options(catalogs), task, template, verbalizer, saved=saved)
    check_trained(saved, setup, calibrate=calibrate, aggregate=aggregate, model=model)
    check_port_free(host, port)  # before the model loads, not after
    opened = open_classifier(setup, saved, model=model, device=device, dtype=dtype, calibrate=calibrate,
                             aggregate=aggregate, batch_size=batch_size, stream=True)
    from promptlab.apply.serve import classifier_service

    info = {**setup.describe(), **opened.describe(), "method": saved.method if saved else "zero-shot",
            "trained": str(saved.folder) if saved else None, "reject_below": reject_below}
    service = classifier_service(opened.classifier, info, reject_threshold=reject_below)
    click.echo(f"serve: {setup.task.name} · template {setup.template.name} · {opened.loaded.name} · calibrate "
               f"{opened.calibrate or '-'}" + (f" · trained {saved.method} {saved.folder}" if saved else "")
               + f" on http://{host}:{port} (POST /classify, GET /health, GET /info)", err=True)
    serve_forever(service, host=host, port=port, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue)


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


def serve_forever(service, *, host: str, port: int, max_batch: int, max_wait_ms: float, max_queue: int) -> None:
    import uvicorn

    from promptlab.apply.serve import create_app

    app = create_app(service, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue)
    uvicorn.run(app, host=host, port=port, log_level="warning")
