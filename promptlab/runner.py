"""Running a suite: each run of its grid once, each finished run appended to results.jsonl at once.

A row is appended (flushed and fsynced) as soon as its run finishes, so an interruption loses at
most the run in flight. A run is known by its key, a hash of its configuration and of the examples
it reads; on start, rows already in the file are read and their keys skipped, and a torn last line
(a process killed while writing it) is cut off. A lock keeps two runners out of one folder.

Per run: the task's test split, cut to the suite's `limit` by a fixed stratified sample (the same
examples for every run); k=0 scores them zero-shot with the run's calibration, k>0 hands them
with the train split to `promptlab.methods.run_method`. Runs go model by model (each loads once),
then method by method in the order the suite lists them, so listing cheap methods first gives an
interrupted long run results for every task.
"""
from __future__ import annotations

import functools
import hashlib
import json
import platform
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TextIO

from promptlab import distributed, methods
from promptlab.backends import Backend, make_backend
from promptlab.backends.cached import CachedScores
from promptlab.catalog import Setup
from promptlab.errors import UserError
from promptlab.models import LoadedModel, load_model, resolve_model, weights_digest
from promptlab.overlap import train_pool_without_test_texts
from promptlab.pipeline import classify, render_all, require_labels
from promptlab.progress import RunTimes, format_seconds, progress_bar
from promptlab.sampling import stratified_split
from promptlab.scoring import LabelScorer
from promptlab.shared_results import ResultsFile, SharedResults
from promptlab.sources import SplitPlan
from promptlab.suite import RunConfig, Suite, expand
from promptlab.template import Prompt

RESULTS_FILE = "results.jsonl"
TEST_SAMPLE_SEED = 0  # the `limit` sample of a test split: fixed, so every run sees the same examples
VERSIONED_PACKAGES = ("promptlab", "torch", "transformers")
ROW_METRICS = ("accuracy", "macro_f1", "dev_accuracy")
# What run_method returns that rows keep under their own names, or leave out (predictions: too long).
_KNOWN_RESULT_FIELDS = (*ROW_METRICS, "train_steps", "seconds", "method", "k", "seed", "options", "sample",
                        "metrics", "predictions", "artifact")


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


@dataclass
class TaskData:
    test: list[dict]
    train: list[dict] | None  # None when no run of the task needs training examples
    prompts: dict[str, list[Prompt]] = field(default_factory=dict)  # template name -> rendered test examples

    def hashes(self, k: int) -> dict[str, str]:
        """The hashes of the examples a run with this k reads: the test sample, and the train pool when k > 0."""
        hashes = {"test": _examples_hash(self.test)}
        if k > 0:
            hashes["train"] = _examples_hash(self.train)
        return hashes


# ---------------------------------------------------------------- run identity

def run_key(config: RunConfig, data: TaskData) -> str:
    """A hash of the run's canonical configuration and of the exact examples it reads.

    The data's hash is in it because a data spec (`source:cr/test`, a file) can name other examples
    tomorrow; a run on other examples is another run, never one to skip.
    """
    canonical = json.dumps({**asdict(config), "data_sha256": data.hashes(config.k)}, sort_keys=True,
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _examples_hash(examples: list[dict]) -> str:
    return hashlib.sha256(json.dumps(examples, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def load_data(suite: Suite, configs: list[RunConfig]) -> dict[str, TaskData]:
    """Every task's test sample and, where a k > 0 run needs it, train pool."""
    data = {}
    for entry in suite.tasks:
        needs_train = any(config.task == entry.name and config.k > 0 for config in configs)
        data[entry.name] = load_task_data(suite.setups[entry.name][0], entry.limit, needs_train=needs_train)
    return data


def check_train_pools(suite: Suite, configs: list[RunConfig], data: dict[str, TaskData]) -> None:
    """Every label must have the 2k train examples (k to train on, k for dev) that the largest k of its task draws."""
    for entry in suite.tasks:
        largest = max((config.k for config in configs if config.task == entry.name), default=0)
        if largest == 0:
            continue
        counts = Counter(example["label"] for example in data[entry.name].train)
        scarcest = min(suite.setups[entry.name][0].task.labels, key=lambda label: counts[label])
        if counts[scarcest] < 2 * largest:
            fitting = [k for k in entry.shots if 2 * k <= counts[scarcest]]
            raise UserError(f"task '{entry.name}': label '{scarcest}' has {counts[scarcest]} training examples, "
                            f"but k={largest} draws {2 * largest} (k to train on and k for the dev set)",
                            where=suite.path, fix=f"give the task its own shots:  tasks: {{{entry.name}: "
                                                  f"{{shots: {fitting}}}}}")


def load_task_data(setup: Setup, limit: int | None, *, needs_train: bool) -> TaskData:
    task = setup.task
    test = task.examples("test")
    require_labels(test, task.path)
    train = None
    if needs_train:
        train = train_pool_without_test_texts(task.examples("train"), test, where=task.path)
        require_labels(train, task.path)
    if limit is not None and limit < len(test):
        test = stratified_split(test, SplitPlan(test=limit, train=0), seed=TEST_SAMPLE_SEED)["test"]
    return TaskData(test=test, train=train)


# ---------------------------------------------------------------- running

def run_suite(suite: Suite, output: Path, *, device: str = "auto", dtype: str | None = None, batch_size: int = 32,
              run: bool = True, log: TextIO = sys.stderr) -> SuiteRun:
    """Run every configuration of the suite not yet in `output`/results.jsonl; return the grid's finished rows.

    With run=False nothing runs: the rows already finished are returned, for reports of a partial run.
    """
    start = time.perf_counter()
    configs = expand(suite)
    data = load_data(suite, configs)
    check_train_pools(suite, configs, data)
    keys = [run_key(config, data[config.task]) for config in configs]
    output.mkdir(parents=True, exist_ok=True)
    with SharedResults(output / RESULTS_FILE) as results:  # under a launcher: a file per process, merged
        finished = {row["key"]: row for row in results.rows}
        weights = _weights_now(suite, finished, keys, configs, device=device, log=log) if run else {}
        finished = {key: row for key, row in finished.items() if _made_with(row, weights)}
        pending = execution_order(suite, [(key, config) for key, config in zip(keys, configs) if key not in finished])
        if pending and run:
            _render_prompts(suite, [config for _, config in pending], data)  # template mistakes surface now
            for model in dict.fromkeys(config.model for _, config in pending):
                resolve_model(model)  # a wrong model name fails now, not after hours of other runs
            mine = distributed.shard(pending)  # under a launcher run i goes to process i % world, whole
            with distributed.alone():
                _run_pending(suite, mine, data, results, finished, device=device, dtype=dtype, batch_size=batch_size,
                             log=log)
    finished.update((row["key"], row) for row in results.rows if _made_with(row, weights))  # other processes' runs
    return SuiteRun(suite=suite.name, output=output, rows=[finished[key] for key in keys if key in finished],
                    runs=len(configs), ran=len(pending) if run else 0, skipped=len(configs) - len(pending),
                    seconds=time.perf_counter() - start)


def _weights_now(suite: Suite, finished: dict[str, dict], keys: list[str], configs: list[RunConfig], *,
                 device: str, log: TextIO) -> dict[str, str]:
    """The fingerprint of the weights each model name loads now, for the models with finished runs.

    A name can stand for other weights than when a row was written (an alias falls back to the hub
    when its package is missing, a folder is overwritten); such rows are not the same run and run again.
    """
    models = dict.fromkeys(config.model for key, config in zip(keys, configs) if key in finished)
    weights = {model: load_model(model, device=device).fingerprint for model in models}
    for model, fingerprint in weights.items():
        stale = sum(row["model"] == model and not _made_with(row, weights) for row in finished.values())
        if stale:
            print(f"{stale} finished run(s) of '{model}' were made with other weights than it loads now "
                  f"(fingerprint {fingerprint}); they run again", file=log)
    return weights


def _made_with(row: dict, weights: dict[str, str]) -> bool:
    """Whether a row was made with the weights its model name loads now (True where not checked)."""
    return row["model"] not in weights or row.get("model_fingerprint") == weights[row["model"]]


def execution_order(suite: Suite, pending: list[tuple[str, RunConfig]]) -> list[tuple[str, RunConfig]]:
    """Model by model (each loads once), then method by method in the suite's order, then k.

    So a long run that is stopped early has covered every task with the methods listed first.
    """
    labels = [variant.label for variant in suite.methods]
    return sorted(pending, key=lambda item: (suite.models.index(item[1].model), labels.index(item[1].label), item[1].k))


def _render_prompts(suite: Suite, pending: list[RunConfig], data: dict[str, TaskData]) -> None:
    for config in pending:
        prompts = data[config.task].prompts
        if config.template not in prompts:
            prompts[config.template] = render_all(suite.setup(config).template, data[config.task].test)


def _run_pending(suite: Suite, pending: list[tuple[str, RunConfig]], data: dict[str, TaskData],
                 results: ResultsFile, finished: dict[str, dict], *, device: str, dtype: str | None, batch_size: int,
                 log: TextIO) -> None:
    # A bar in a terminal, plain lines in logs; the line per run carries an ETA from runs of the same kind.
    bar = progress_bar(len(pending), f"eval {suite.name}", unit="run", always=True, file=log)
    times, done = RunTimes(), 0
    try:
        for model_name in dict.fromkeys(config.model for _, config in pending):
            loaded = load_model(model_name, device=device, dtype=dtype)
            # Zero-shot runs differing only in calibration or aggregation score the same prompts once.
            backend = CachedScores(make_backend(loaded.model, loaded.tokenizer, loaded.kind, loaded.device))
            as_loaded = weights_digest(loaded.model)  # few-shot runs must leave the shared weights as they are
            for key, config in ((key, config) for key, config in pending if config.model == model_name):
                bar.set_postfix_str(describe(config), refresh=True)
                row = run_one(key, config, suite, data[config.task], loaded, backend, batch_size=batch_size,
                              weights_as_loaded=as_loaded)
                results.append(row)
                finished[key] = row
                done += 1
                bar.update(1)
                times.add(_kind(config), row["seconds"])
                eta = times.remaining(_kind(later) for _, later in pending[done:])
                bar.write(f"[{done}/{len(pending)}] {describe(config)}: accuracy {row['metrics']['accuracy']:.3f} "
                          f"({row['seconds']:.1f} s; ETA {format_seconds(eta)})", file=log)
    except KeyboardInterrupt:
        bar.write(f"interrupted: {done} of {len(pending)} runs finished and saved in {results.path}; "
                  "run the same command again to continue", file=log)
        raise
    finally:
        bar.close()


def _kind(config: RunConfig) -> tuple:
    """Runs that take about as long as each other: same method variant, same k."""
    return config.label, config.k


def describe(config: RunConfig) -> str:
    seed = "" if config.seed is None else f" seed {config.seed}"
    return f"{config.task} · {config.template}/{config.verbalizer} · {config.label} · k={config.k}{seed}"


def run_one(key: str, config: RunConfig, suite: Suite, data: TaskData, loaded: LoadedModel, backend: Backend, *,
            batch_size: int, weights_as_loaded: str) -> dict:
    """Run one configuration and return its results row."""
    setup = suite.setup(config)
    start = time.perf_counter()
    if config.k == 0:
        result = _zero_shot(config, setup, data, backend, batch_size)
    else:
        result = _few_shot(config, setup, data, loaded, weights_as_loaded)
    seconds = time.perf_counter() - start
    return {
        "key": key, "suite": suite.name, **asdict(config), "data_sha256": data.hashes(config.k),
        "model_source": loaded.source, "model_kind": loaded.kind, "model_fingerprint": loaded.fingerprint,
        "device": str(loaded.device), "dtype": loaded.dtype,
        "n_test": len(data.test), "n_labels": len(setup.task.labels),
        "metrics": {name: result[name] for name in ROW_METRICS if result.get(name) is not None},
        "train_steps": result.get("train_steps", 0), "seconds": round(seconds, 3),
        "confusion": result["metrics"]["confusion"],
        "method_options": result.get("options"),  # every option the method used, defaults included
        "sample": result.get("sample"),  # the k-shot example ids drawn with this seed
        "artifact": result.get("artifact"),  # e.g. where a trained soft prompt was saved
        "details": {name: value for name, value in result.items() if name not in _KNOWN_RESULT_FIELDS
                    and isinstance(value, (int, float, str, bool))},
        "versions": package_versions(), "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _zero_shot(config: RunConfig, setup: Setup, data: TaskData, backend: Backend, batch_size: int) -> dict:
    scorer = LabelScorer(backend, setup.template, setup.verbalizer, aggregate=config.options["aggregate"],
                         calibrate=config.options["calibrate"], batch_size=batch_size)
    classified = classify(scorer, data.test, data.prompts[config.template], setup.task.labels)
    return {"accuracy": classified.metrics["accuracy"], "macro_f1": classified.metrics["macro_f1"],
            "metrics": classified.metrics}


def _few_shot(config: RunConfig, setup: Setup, data: TaskData, loaded: LoadedModel, weights_as_loaded: str) -> dict:
    result = methods.run_method(config.method, setup=setup, loaded=loaded, train_pool=data.train,
                        test_examples=data.test, k=config.k, seed=config.seed, options=dict(config.options))
    _check_model_untouched(loaded, config, weights_as_loaded)
    return result


def _check_model_untouched(loaded: LoadedModel, config: RunConfig, weights_as_loaded: str) -> None:
    # Runs share the loaded model; weights left changed by one run would silently skew every later one.
    if weights_digest(loaded.model) != weights_as_loaded:
        raise RuntimeError(f"method '{config.method}' left the model's weights changed ({describe(config)})")


@functools.cache
def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:  # e.g. promptlab run from a source tree that was never installed
            versions[package] = "not installed"
    return versions
