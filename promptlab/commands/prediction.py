"""`promptlab predict`: classify unlabelled rows from a file or stdin into JSONL/CSV, as they come."""
from __future__ import annotations

import time

import click

from promptlab.methods.artefacts import load_trained
from promptlab.apply.rows import STDIN, count_rows, input_rows
from promptlab.apply.predict import OutputFile, output_format, run_predict
from promptlab.apply.registry import check_trained, open_classifier
from promptlab.catalog.catalog import Catalog, Setup
from promptlab.runtime.progress import progress_bar
from promptlab.metrics.rejection import check_threshold

CHUNK_BATCHES = 8  # rows are classified (and written) this many batches at a time


def run_predict_command(*, task, template, verbalizer, model, trained, calibrate, aggregate, input_path, output,
                        output_format_name, top_k, batch_size, device, dtype, catalogs, resume,
                        reject_below=None) -> None:
    check_threshold(reject_below)
    saved = load_trained(trained) if trained else None
    setup = Setup.for_run(Catalog.from_options(catalogs), task, template, verbalizer, saved=saved)
    check_trained(saved, setup, calibrate=calibrate, aggregate=aggregate, model=model)
    total = count_rows(input_path)  # reads (and checks) a file before the model loads
    if top_k is not None and top_k > len(setup.task.labels):
        top_k = len(setup.task.labels)
    writer = OutputFile(output, output_format(output, output_format_name), setup.task.labels, resume=resume)
    try:
        opened = open_classifier(setup, saved, model=model, device=device, dtype=dtype, calibrate=calibrate,
                                 aggregate=aggregate, batch_size=batch_size, stream=True)
        click.echo(f"predict: {setup.task.name} · template {setup.template.name} · verbalizer {setup.verbalizer.name} "
                   f"· {opened.loaded.name} ({opened.loaded.kind}, {opened.loaded.device}) · calibrate "
                   f"{opened.calibrate or '-'}" + (f" · trained {saved.method} {saved.folder}" if saved else ""), err=True)
        started = time.perf_counter()
        with progress_bar(total, "predict", unit="row") as bar:
            written = run_predict(opened.classifier, input_rows(input_path), writer, source=input_path,
                                  chunk_size=opened.batch_size * CHUNK_BATCHES, top_k=top_k, progress=bar.update,
                                  reject_threshold=reject_below)
    finally:
        writer.close()
    seconds = time.perf_counter() - started
    where = "standard output" if output == STDIN else output
    resumed = f" after the {writer.done} already there" if writer.done else ""
    click.echo(f"predict: {written} rows{resumed} in {seconds:.1f} s ({written / max(seconds, 1e-9):.1f} rows/s) "
               f"into {where}", err=True)
