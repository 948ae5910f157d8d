"""`promptlab eval SUITE --output DIR`: run a suite's grid (skipping finished runs), then write its reports."""
from __future__ import annotations

import json
import time

import click

from promptlab.runtime import distributed
from promptlab.catalog.catalog import Catalog
from promptlab.errors import UserError
from promptlab.backends.models import dtype_name, resolve_device, resolve_dtype
from promptlab.runtime.outputs import output_folder
from promptlab.evaluation.report import write_reports
from promptlab.evaluation.runner import RESULTS_FILE, run_suite
from promptlab.evaluation.suite import expand, load_suite

INTERRUPTED = 130  # the shell's status for a run stopped by Ctrl-C


def run_eval_command(*, suite, output, device, dtype, batch_size, catalogs, as_json, report_only) -> None:
    start = time.perf_counter()
    loaded = load_suite(suite, Catalog.from_options(catalogs))
    folder = output_folder(output)
    precision = dtype_name(resolve_dtype(dtype, resolve_device(device)))
    click.echo(f"suite {loaded.name}: {len(expand(loaded))} runs into {folder} ({precision})", err=True)
    try:
        outcome = run_suite(loaded, folder, device=device, dtype=dtype, batch_size=batch_size, run=not report_only)
    except KeyboardInterrupt:
        raise SystemExit(INTERRUPTED) from None
    if report_only and not outcome.rows:
        raise UserError(f"no finished runs of suite '{loaded.name}' in {folder / RESULTS_FILE}: nothing to report",
                        fix=f"run `promptlab eval {suite} --output {output}` first")
    if not distributed.is_main():
        return  # under a launcher the main process writes the reports
    files = write_reports(outcome.rows, folder, suite=loaded.name, description=loaded.description,
                          metrics=loaded.metrics, ran=outcome.ran, seconds=outcome.seconds)
    seconds = time.perf_counter() - start
    left = outcome.runs - outcome.ran - outcome.skipped
    click.echo(f"{outcome.runs} runs: {outcome.ran} run now, {outcome.skipped} already in {RESULTS_FILE}"
               + (f", {left} not run (the reports cover the finished ones)" if left else "") + f" ({seconds:.1f} s)")
    for path in [folder / RESULTS_FILE, *files]:
        click.echo(f"wrote {path}")
    if as_json:
        click.echo(json.dumps({"suite": loaded.name, "suite_file": str(loaded.path), "output": str(folder),
                               "dtype": precision, "runs": outcome.runs, "ran": outcome.ran, "skipped": outcome.skipped,
                               "seconds": round(seconds, 3),
                               "files": [str(path) for path in [folder / RESULTS_FILE, *files]]}))
