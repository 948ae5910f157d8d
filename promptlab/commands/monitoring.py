"""`promptlab monitor`: a news stream classified by every --classifier, aggregated per window, alerts, a report."""
from __future__ import annotations

import signal
import threading
import time

import click

from promptlab.apply.alerts import parse_rule
from promptlab.apply.monitor import MonitorRun, MonitorState
from promptlab.apply.monitor_classifiers import open_classifiers, plan_classifiers
from promptlab.apply.stream import StreamReader
from promptlab.apply.windows import parse_window
from promptlab.catalog.catalog import Catalog
from promptlab.runtime.outputs import output_folder
from promptlab.runtime.progress import progress_bar


def run_monitor_command(*, classifiers, input_path, time_field, id_field, text_field, window, follow, poll, alerts,
                        output, batch_size, device, dtype, catalogs) -> None:
    windowing = parse_window(window)
    plans = plan_classifiers(list(classifiers), Catalog.from_options(catalogs))
    labels = {plan.name: plan.labels for plan in plans}
    rules = [parse_rule(text, labels) for text in alerts]
    reader = StreamReader(input_path, id_field, time_field)  # checks the input before the models load
    folder = output_folder(output)
    state = MonitorState.open(folder, [plan.name for plan in plans], labels, windowing, rules)
    reader.seen = state.seen
    opened = open_classifiers(plans, text_field=text_field, device=device, dtype=dtype, batch_size=batch_size)
    reader.required = frozenset().union(*(classifier.fields for classifier in opened))
    for classifier in opened:
        click.echo(f"monitor: {classifier.description}", err=True)
    if state.documents:
        click.echo(f"monitor: {len(state.documents)} documents already labelled in {folder}: skipped", err=True)
    stop = threading.Event()
    if follow:
        _stop_on_signals(stop)
    run = MonitorRun(state, reader, opened, chunk_size=max(classifier.predictor.chunk_size for classifier in opened),
                     report={"input": input_path, "text_field": text_field, "rules": [rule.text for rule in rules],
                             "classifiers": [classifier.description for classifier in opened]})
    started = time.perf_counter()
    with progress_bar(None, "monitor", unit="doc") as bar:
        run.progress = bar.update
        run.run(follow=follow, poll=poll, stop=stop)
    seconds = time.perf_counter() - started
    skipped = ", ".join(f"{count} {reason}" for reason, count in sorted(reader.errors.items()))
    click.echo(f"monitor: {run.written} documents in {seconds:.1f} s ({run.written / max(seconds, 1e-9):.1f} docs/s)"
               f", {len(state.documents)} in all, {len(run.alerts)} alerts"
               + (f"; rows skipped: {skipped}" if skipped else "") + f" · {folder}/report.html", err=True)


def _stop_on_signals(stop: threading.Event) -> None:
    """SIGINT/SIGTERM: finish the documents there are, write everything, exit 0; a second signal stops at once."""
    def handle(number, frame):
        stop.set()
        signal.signal(number, signal.SIG_DFL)

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def run_example_command(*, output, days, start, stories, words, burst_topic, burst_day, burst_size, seed) -> None:
    from pathlib import Path

    from promptlab.apply.monitor_example import example_stream
    from promptlab.data.readers import read_jsonl
    from promptlab.data.sources import split_path
    from promptlab.runtime.outputs import write_jsonl

    rows = [dict(row) for row, _ in read_jsonl(split_path("reuters8", "test"))]
    if stories is not None:
        rows = rows[:stories]
    stream = example_stream(rows, days=days, start=start, words=words, burst_topic=burst_topic, burst_day=burst_day,
                            burst_size=burst_size, seed=seed)
    write_jsonl(Path(output), stream)
    click.echo(f"monitor-example: {len(stream)} documents over {days} days from {start} ({burst_size} negative "
               f"'{burst_topic}' stories on day {burst_day}) into {output}; times assigned, not real", err=True)
