"""`promptlab continual SUITE --output DIR`: learn a task sequence with every strategy, then report forgetting."""
from __future__ import annotations

import json
import time

import click

from promptlab.catalog.catalog import Catalog
from promptlab.commands.eval import INTERRUPTED
from promptlab.continual.matrix_report import write_reports
from promptlab.continual.sequence import RESULTS_FILE, run_continual, units
from promptlab.continual.sequence_suite import load_continual_suite
from promptlab.runtime.outputs import output_folder


def run_continual_command(*, suite, output, device, catalogs, as_json, report_only, dtype=None) -> None:
    started = time.perf_counter()
    loaded = load_continual_suite(suite, Catalog.from_options(catalogs))
    folder = output_folder(output)
    tasks = [task.name for task in loaded.tasks]
    click.echo(f"continual {loaded.name}: {' -> '.join(tasks)}; {len(loaded.strategies)} strategies × "
               f"{len(loaded.seeds)} seed(s), k={loaded.k}, into {folder}", err=True)
    try:
        rows = run_continual(loaded, folder, device=device, dtype=dtype, run=not report_only)
    except KeyboardInterrupt:
        raise SystemExit(INTERRUPTED) from None
    summary, files = write_reports(rows, folder, suite=loaded.name, tasks=tasks, description=loaded.description)
    total = len(units(loaded))
    click.echo(f"{len(rows)} of {total} units finished ({time.perf_counter() - started:.0f} s)")
    for name, strategy in summary["strategies"].items():
        click.echo(f"{name:<20} average accuracy {strategy['average_accuracy']:.3f}  BWT {_signed(strategy['bwt'])}  "
                   f"FWT {_signed(strategy['fwt'])}  with routing {_signed(strategy.get('accuracy_with_routing'), '')}")
    for path in [folder / RESULTS_FILE, *files]:
        click.echo(f"wrote {path}")
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))


def _signed(value: float | None, sign: str = "+") -> str:
    return "–" if value is None else f"{value:{sign}.3f}"
