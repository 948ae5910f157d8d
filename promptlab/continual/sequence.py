"""Running a continual suite: every strategy learns the task sequence once per seed, tested after each task.

After learning task i, a strategy is tested on every task seen so far and on the next one (forward
transfer needs it): row i of the accuracy matrix. Each finished unit of work is one row of
results.jsonl, appended and fsynced at once, with the eval harness's file (lock, torn last line cut):

    zero-shot            the untrained model on every task (FWT's reference), once
    router, per seed     the task router's choice for every test example
    strategy, per seed   the strategy's whole sequence: matrix, final per-example correctness, costs

A unit is known by a hash of what it depends on (model, tasks with their file hashes, k, options,
seed, and the examples read), so a rerun into the same folder skips finished units; a strategy
interrupted mid-sequence starts its sequence again.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

import torch

from promptlab.backends import make_backend
from promptlab.continual.router import route
from promptlab.continual.strategies import learning_context, make_strategy, strategy_options
from promptlab.continual.sequence_suite import ContinualSuite
from promptlab.backends.models import (
    LoadedModel,
    dtype_name,
    load_model,
    resolve_device,
    resolve_dtype,
    resolve_model,
)
from promptlab.runtime.distributed import process_device
from promptlab.backends.sentence_encoders import load_encoder
from promptlab.methods.pipeline import render_all, score_all
from promptlab.evaluation.runner import RESULTS_FILE, ResultsFile, package_versions
from promptlab.data.sampling import KShotSplit, sample_kshot
from promptlab.backends.scoring import LabelScorer
from promptlab.catalog.template import Prompt
from promptlab.evaluation.units.text import load_task_data
from promptlab.evaluation.units import TaskData

ZERO_SHOT, ROUTER, STRATEGY = "zero-shot", "router", "strategy"


@dataclass
class SequenceData:
    tasks: list[TaskData]  # per task: the test sample and the train pool
    prompts: list[list[Prompt]]  # per task: the rendered test sample
    gold: list[torch.Tensor]  # per task: label indices of the test sample

    def splits(self, suite: ContinualSuite, seed: int) -> list[KShotSplit]:
        return [sample_kshot(data.train, task.setup.task.labels, suite.k, seed)
                for task, data in zip(suite.tasks, self.tasks)]


def load_sequence_data(suite: ContinualSuite) -> SequenceData:
    """Every task's test sample and train pool; every seed's k-shot samples are drawn now: a short pool fails early."""
    tasks = [load_task_data(task.setup, task.limit, needs_train=True) for task in suite.tasks]
    prompts = [render_all(task.setup.template, data.test) for task, data in zip(suite.tasks, tasks)]
    gold = [torch.tensor([task.setup.task.labels.index(example["label"]) for example in data.test])
            for task, data in zip(suite.tasks, tasks)]
    sequence = SequenceData(tasks, prompts, gold)
    for seed in suite.seeds:
        sequence.splits(suite, seed)
    return sequence


def units(suite: ContinualSuite) -> list[tuple[str, str | None, int | None]]:
    """(kind, strategy, seed) of every unit, in the order they run: cheap ones first."""
    return ([(ZERO_SHOT, None, None)] + [(ROUTER, None, seed) for seed in suite.seeds]
            + [(STRATEGY, name, seed) for name in suite.strategies for seed in suite.seeds])


def unit_key(suite: ContinualSuite, data: SequenceData, kind: str, strategy: str | None, seed: int | None,
             precision: str) -> str:
    """A hash of what the unit runs, on which examples, in which precision (the resolved one: `--dtype auto` is
    bfloat16 on one machine and float32 on another), so a unit in another precision is another unit."""
    canonical = {"kind": kind, "strategy": strategy, "options": suite.strategies.get(strategy), "seed": seed,
                 "dtype": precision,
                 **({"router_encoder": suite.router_encoder} if kind == ROUTER and suite.router_encoder else {}),
                 "model": suite.model, "k": suite.k, "tasks": [task.describe() for task in suite.tasks],
                 "data_sha256": [task_data.hashes(suite.k) for task_data in data.tasks]}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()[:16]


def run_continual(suite: ContinualSuite, output: Path, *, device: str = "auto", dtype: str | None = None,
                  run: bool = True, log: TextIO = sys.stderr) -> list[dict]:
    """Run the units not yet in output/results.jsonl; return every finished row of the suite, in unit order.

    A finished unit counts only if it was made in this run's precision (its key holds it) and, when this call
    runs units, with the weights the model name loads now (its fingerprint): else it runs again."""
    data = load_sequence_data(suite)
    precision = dtype_name(resolve_dtype(dtype, resolve_device(process_device(device))))
    keyed = [(unit_key(suite, data, *unit, precision), unit) for unit in units(suite)]
    output.mkdir(parents=True, exist_ok=True)
    with ResultsFile(output / RESULTS_FILE) as results:
        finished = {row["key"]: row for row in results.rows}
        loaded = None
        if run and any(key in finished for key, _ in keyed):
            resolve_model(suite.model)
            loaded = load_model(suite.model, device=device, dtype=dtype)
            stale = [key for key, _ in keyed if key in finished and
                     finished[key].get("model_fingerprint") != loaded.fingerprint]
            if stale:
                print(f"{len(stale)} finished unit(s) were made with other weights than '{suite.model}' loads now "
                      f"(fingerprint {loaded.fingerprint}); they run again", file=log)
            for key in stale:
                del finished[key]
        pending = [(key, unit) for key, unit in keyed if key not in finished]
        if pending and run:
            if loaded is None:
                resolve_model(suite.model)
                loaded = load_model(suite.model, device=device, dtype=dtype)
            for number, (key, (kind, strategy, seed)) in enumerate(pending, start=1):
                started = time.perf_counter()
                row = _run_unit(kind, strategy, seed, suite, data, loaded, log)
                row.update(key=key, suite=suite.name, kind=kind, strategy=strategy, seed=seed, model=suite.model,
                           model_fingerprint=loaded.fingerprint, dtype=loaded.dtype,
                           tasks=[task.name for task in suite.tasks],
                           k=suite.k, seconds=round(time.perf_counter() - started, 2), versions=package_versions(),
                           finished=datetime.now(timezone.utc).isoformat(timespec="seconds"))
                results.append(row)
                finished[key] = row
                print(f"[{number}/{len(pending)}] {kind}{' ' + strategy if strategy else ''}"
                      f"{'' if seed is None else f' seed {seed}'}: {row['seconds']:.0f} s", file=log, flush=True)
    return [finished[key] for key, _ in keyed if key in finished]


def _run_unit(kind: str, strategy: str | None, seed: int | None, suite: ContinualSuite, data: SequenceData,
              loaded: LoadedModel, log: TextIO) -> dict:
    if kind == ZERO_SHOT:
        backend = make_backend(loaded.model, loaded.tokenizer, loaded.kind, loaded.device)
        return {"accuracy": [_accuracy(LabelScorer(backend, task.setup.template, task.setup.verbalizer), data, j)[0]
                             for j, task in enumerate(suite.tasks)]}
    splits = data.splits(suite, seed)
    if kind == ROUTER:
        encoder = load_encoder(suite.router_encoder, device=str(loaded.device)) if suite.router_encoder else None
        routing = route(loaded, [task.setup for task in suite.tasks], splits, [d.test for d in data.tasks],
                        encoder=encoder)
        return {"router_encoder": suite.router_encoder, "routed": routing.routed,
                "routing_accuracy": routing.accuracy(), "c": routing.c,
                "dev_accuracy": routing.dev_accuracy}
    return _learn_sequence(strategy, seed, suite, data, loaded, splits, log)


def _learn_sequence(name: str, seed: int, suite: ContinualSuite, data: SequenceData, loaded: LoadedModel,
                    splits: list[KShotSplit], log: TextIO) -> dict:
    options = strategy_options(name, suite.strategies[name])
    strategy = make_strategy(name, loaded, options, seed)
    count = len(suite.tasks)
    matrix: list[list[float | None]] = []
    correct: list[list[bool]] = []
    steps, seconds_per_step = [], []
    for i, task in enumerate(suite.tasks):
        result = strategy.learn(i, learning_context(task.setup, loaded, splits[i], seed, options))
        steps.append(result.steps)
        seconds_per_step.append(round(result.seconds_per_step, 4))
        row: list[float | None] = [None] * count
        for j in range(min(i + 2, count)):  # the tasks seen so far and the next one
            row[j], correct_j = _accuracy(strategy.scorer(j, suite.tasks[j].setup), data, j)
            if i == count - 1:
                correct.append(correct_j)
        matrix.append(row)
        print(f"  {name} seed {seed}: learned {task.name} ({result.steps} steps); accuracy "
              + ", ".join(f"{other.name} {value:.3f}" for other, value in zip(suite.tasks, row) if value is not None),
              file=log, flush=True)
    return {"options": {key: value for key, value in vars(options).items() if key != "save_to"},
            "matrix": matrix, "final_correct": correct, "train_steps": steps, "seconds_per_step": seconds_per_step,
            "trainable_parameters": strategy.trainable_parameters()}


def _accuracy(scorer: LabelScorer, data: SequenceData, task: int) -> tuple[float, list[bool]]:
    with torch.inference_mode():
        logprobs = score_all(scorer, data.prompts[task], scorer.word_of.shape[0])
    correct = (logprobs.argmax(-1) == data.gold[task]).tolist()
    return sum(correct) / len(correct), correct
