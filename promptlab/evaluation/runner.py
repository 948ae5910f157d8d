"""Running a suite: each unit (run) of its grid once, each finished unit appended to results.jsonl at once.

A row is appended (flushed and fsynced) as soon as its unit finishes, so an interruption loses at
most the unit in flight. A unit is known by its key, a hash of its configuration and of the examples
it reads; on start, rows already in the file are read and their keys skipped, and a torn last line
(a process killed while writing it) is cut off. A lock keeps two runners out of one folder.

What a unit reads and how it runs is its task kind's: `load_suite_data` and `run_unit` of the kind's unit module
(text tasks: promptlab.evaluation.units.text, entity tasks: promptlab.evaluation.units.entities). Units go model
by model (each loads once, on first use: a `SharedModel`), then method by method in the order the
suite lists them, so listing cheap methods first gives an interrupted long run results for every
task. A unit that scores through the shared model must leave its weights as it found them.
"""
from __future__ import annotations

import functools
import hashlib
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable, TextIO

from promptlab.runtime import distributed
from promptlab.catalog.task import DEFAULT_KIND
from promptlab.kinds import KINDS, Kind, kind_of
from promptlab.backends.models import dtype_name, resolve_device, resolve_dtype, resolve_model
from promptlab.methods.pipeline import render_all
from promptlab.runtime.progress import RunTimes, format_seconds, progress_bar
from promptlab.evaluation.shared_results import ResultsFile, SharedResults
from promptlab.evaluation.suite import RunConfig, Suite, expand
from promptlab.evaluation.units import SharedModel, TaskData
from promptlab.evaluation.units import entities as entity_units, text as text_units

UNITS = {"classification": text_units, "entities": entity_units}  # kind -> its `suite_data` and `run_unit`

RESULTS_FILE = "results.jsonl"
VERSIONED_PACKAGES = ("promptlab", "torch", "transformers")
SHARED = None  # the way of loading a model name that units share: as a language model (promptlab.backends.models)


@dataclass
class SuiteRun:
    """What running a suite left: every finished row of its grid (old and new) in grid order."""

    suite: str
    output: Path
    rows: list[dict]
    runs: int  # the size of the grid
    ran: int  # runs done this time
    skipped: int  # runs found finished in results.jsonl
    seconds: float


# ---------------------------------------------------------------- run identity

def run_key(config: RunConfig, data: TaskData, precision: str) -> str:
    """A hash of the run's canonical configuration, the precision its weights run in and the exact examples
    it reads.

    The data's hash is in it because a data spec (`source:cr/test`, a file) can name other examples
    tomorrow; a run on other examples is another run, never one to skip. The precision is the resolved one
    (`--dtype auto` is bfloat16 on one machine and float32 on another): a run in another precision is another run.
    """
    canonical = json.dumps({**asdict(config), "dtype": precision, "data_sha256": data.hashes(config.k)},
                           sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def load_data(suite: Suite) -> dict[str, TaskData]:
    """Every task's test sample and, where a k > 0 unit needs it, train pool: its kind's, checked."""
    data = {}
    for entry in suite.tasks:
        setup = suite.setups[entry.name][0]
        data[entry.name] = UNITS[setup.task.kind].load_suite_data(setup, entry, where=suite.path)
    return data


def unit_kind(suite: Suite, config: RunConfig) -> Kind:
    return kind_of(suite.setup(config).task)


def _own_loader(kind: Kind, method: str) -> Callable[[str, str], str] | None:
    """How a unit's method loads its model: SHARED, or the function fingerprinting it its own way."""
    return kind.own_models.get(method, SHARED)


# ---------------------------------------------------------------- running

def run_suite(suite: Suite, output: Path, *, device: str = "auto", dtype: str | None = None, batch_size: int = 32,
              run: bool = True, log: TextIO = sys.stderr) -> SuiteRun:
    """Run every configuration of the suite not yet in `output`/results.jsonl; return the grid's finished rows.

    With run=False nothing runs: the rows already finished are returned, for reports of a partial run.
    """
    start = time.perf_counter()
    configs = expand(suite)
    data = load_data(suite)
    precision = dtype_name(resolve_dtype(dtype, resolve_device(device)))
    keys = [run_key(config, data[config.task], precision) for config in configs]
    output.mkdir(parents=True, exist_ok=True)
    with SharedResults(output / RESULTS_FILE) as results:  # under a launcher: a file per process, merged
        finished = {row["key"]: row for row in results.rows}
        weights = _weights_now(suite, finished, keys, configs, device=device, log=log) if run else {}
        finished = {key: row for key, row in finished.items() if _made_with(row, weights)}
        pending = execution_order(suite, [(key, config) for key, config in zip(keys, configs) if key not in finished])
        if pending and run:
            _render_prompts(suite, [config for _, config in pending], data)  # template mistakes surface now
            for model, loader in dict.fromkeys((config.model, _loader(suite, config)) for _, config in pending):
                if loader == SHARED:
                    resolve_model(model)  # a wrong model name fails now, not after hours of other runs
            mine = distributed.shard(pending)  # under a launcher run i goes to process i % world, whole
            with distributed.alone():
                _run_pending(suite, mine, data, results, finished, device=device, dtype=dtype, batch_size=batch_size,
                             log=log)
    finished.update((row["key"], row) for row in results.rows if _made_with(row, weights))  # other processes' runs
    return SuiteRun(suite=suite.name, output=output, rows=[finished[key] for key in keys if key in finished],
                    runs=len(configs), ran=len(pending) if run else 0, skipped=len(configs) - len(pending),
                    seconds=time.perf_counter() - start)


def _loader(suite: Suite, config: RunConfig) -> Callable[[str, str], str] | None:
    return _own_loader(unit_kind(suite, config), config.method)


def _row_loader(row: dict) -> Callable[[str, str], str] | None:
    return _own_loader(KINDS[row.get("kind", DEFAULT_KIND)], row["method"])


def _weights_now(suite: Suite, finished: dict[str, dict], keys: list[str], configs: list[RunConfig], *,
                 device: str, log: TextIO) -> dict[tuple, str]:
    """The fingerprint of the weights each model name loads now, for the models with finished runs, per way of
    loading it (the shared language model, or a method's own: see SharedModel).

    A name can stand for other weights than when a row was written (an alias falls back to the hub
    when its package is missing, a folder is overwritten); such rows are not the same run and run again.
    """
    ways: dict[str, dict] = {}
    for key, config in zip(keys, configs):
        if key in finished:
            ways.setdefault(config.model, {})[_loader(suite, config)] = None
    weights = {}
    for model, loaders in ways.items():
        shared = SharedModel(model, device=device)  # dropped once fingerprinted: one model in memory at a time
        for loader in loaders:
            weights[(model, loader)] = shared.fingerprint(loader)
    for (model, loader), fingerprint in weights.items():
        stale = sum((row["model"], _row_loader(row)) == (model, loader) and not _made_with(row, weights)
                    for row in finished.values())
        if stale:
            print(f"{stale} finished run(s) of '{model}' were made with other weights than it loads now "
                  f"(fingerprint {fingerprint}); they run again", file=log)
    return weights


def _made_with(row: dict, weights: dict[tuple, str]) -> bool:
    """Whether a row was made with the weights its model name loads now (True where not checked)."""
    way = (row["model"], _row_loader(row))
    return way not in weights or row.get("model_fingerprint") == weights[way]


def execution_order(suite: Suite, pending: list[tuple[str, RunConfig]]) -> list[tuple[str, RunConfig]]:
    """Model by model (each loads once), then method by method in the suite's order, then k.

    So a long run that is stopped early has covered every task with the methods listed first.
    """
    labels = [variant.label for variant in suite.methods]
    models = suite.run_models
    return sorted(pending, key=lambda item: (models.index(item[1].model), labels.index(item[1].label), item[1].k))


def _render_prompts(suite: Suite, pending: list[RunConfig], data: dict[str, TaskData]) -> None:
    """What each pending unit's template renders (its kind's prompt inputs of the test sample)."""
    for config in pending:
        prompts = data[config.task].prompts
        if config.template not in prompts:
            inputs = unit_kind(suite, config).prompt_inputs(data[config.task].test)
            prompts[config.template] = render_all(suite.setup(config).template, inputs)


def _run_pending(suite: Suite, pending: list[tuple[str, RunConfig]], data: dict[str, TaskData],
                 results: ResultsFile, finished: dict[str, dict], *, device: str, dtype: str | None, batch_size: int,
                 log: TextIO) -> None:
    # A bar in a terminal, plain lines in logs; the line per run carries an ETA from runs of the same kind.
    bar = progress_bar(len(pending), f"eval {suite.name}", unit="run", always=True, file=log)
    times, done = RunTimes(), 0
    try:
        for model_name in dict.fromkeys(config.model for _, config in pending):
            model = SharedModel(model_name, device=device, dtype=dtype)
            units = [(key, config) for key, config in pending if config.model == model_name]
            for loader in dict.fromkeys(_loader(suite, config) for _, config in units):
                model.fingerprint(loader)  # loaded now, not within the first unit's time
            for key, config in units:
                bar.set_postfix_str(describe(config), refresh=True)
                row = run_one(key, config, suite, data[config.task], model, batch_size=batch_size)
                results.append(row)
                finished[key] = row
                done += 1
                bar.update(1)
                times.add(_timing_group(config), row["seconds"])
                eta = times.remaining(_timing_group(later) for _, later in pending[done:])
                score = unit_kind(suite, config).metrics[0]
                bar.write(f"[{done}/{len(pending)}] {describe(config)}: {score} {row['metrics'][score]:.3f} "
                          f"({row['seconds']:.1f} s; ETA {format_seconds(eta)})", file=log)
    except KeyboardInterrupt:
        bar.write(f"interrupted: {done} of {len(pending)} runs finished and saved in {results.path}; "
                  "run the same command again to continue", file=log)
        raise
    finally:
        bar.close()


def _timing_group(config: RunConfig) -> tuple:
    """Runs that take about as long as each other: same method variant, same k."""
    return config.label, config.k


def describe(config: RunConfig) -> str:
    seed = "" if config.seed is None else f" seed {config.seed}"
    return f"{config.task} · {config.template}/{config.verbalizer} · {config.label} · k={config.k}{seed}"


def run_one(key: str, config: RunConfig, suite: Suite, data: TaskData, model: SharedModel, *,
            batch_size: int) -> dict:
    """Run one configuration with its task kind's `run_unit` and return its results row."""
    setup = suite.setup(config)
    kind = kind_of(setup.task)
    start = time.perf_counter()
    unit = UNITS[kind.name].run_unit(config, setup, data, model, batch_size=batch_size)
    seconds = time.perf_counter() - start
    if config.k > 0:
        model.check_untouched(f"method '{config.method}'", describe(config))
    return {"key": key, "suite": suite.name, **asdict(config), "kind": kind.name,
            "data_sha256": data.hashes(config.k), "n_test": len(data.test), **unit, "seconds": round(seconds, 3),
            "versions": package_versions(), "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}


@functools.cache
def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:  # e.g. promptlab run from a source tree that was never installed
            versions[package] = "not installed"
    return versions
