"""`promptlab predict`: answer unlabelled rows from a file or stdin into JSONL/CSV, as they come, for every kind of
task (promptlab.apply.answering: a classifier's labels, an entity task's spans)."""
from __future__ import annotations

import time

import click

from promptlab.apply.answering import plan_rows
from promptlab.apply.predict import OutputFile, fix_prior, output_format, run_predict
from promptlab.apply.rows import STDIN, count_rows, input_rows
from promptlab.catalog.catalog import Catalog
from promptlab.metrics.rejection import check_threshold
from promptlab.runtime.progress import progress_bar


def run_predict_command(*, task, template, verbalizer, model, trained, calibrate, aggregate, input_path, output,
                        output_format_name, top_k, batch_size, device, dtype, catalogs, resume,
                        reject_below=None) -> None:
    check_threshold(reject_below)
    plan = plan_rows(Catalog.from_options(catalogs), task=task, trained=trained, template=template,
                     verbalizer=verbalizer, model=model, calibrate=calibrate, aggregate=aggregate, top_k=top_k,
                     reject_below=reject_below)
    total = count_rows(input_path)  # reads (and checks) a file before the model loads
    writer = OutputFile(output, output_format(output, output_format_name), plan.layout, resume=resume)
    try:
        predictor = plan.load(device=device, dtype=dtype, batch_size=batch_size)
        click.echo(f"predict: {predictor.summary}", err=True)
        writer.record_weights(predictor.info)
        started = time.perf_counter()
        if predictor.fix_prior is not None and input_path != STDIN:
            click.echo("predict: batch calibration: a first pass over the file fixes the prior", err=True)
            fix_prior(predictor, input_rows(input_path), source=input_path, keep_scores=True)
        with progress_bar(total, "predict", unit="row") as bar:
            written = run_predict(predictor, input_rows(input_path), writer, source=input_path, progress=bar.update)
    finally:
        writer.close()
    seconds = time.perf_counter() - started
    where = "standard output" if output == STDIN else output
    resumed = f" after the {writer.done} already there" if writer.done else ""
    click.echo(f"predict: {written} rows{resumed} in {seconds:.1f} s ({written / max(seconds, 1e-9):.1f} rows/s) "
               f"into {where}", err=True)
