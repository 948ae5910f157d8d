"""`promptlab eval` units on text classification tasks: the examples a suite reads, and one unit's run.

The test split is cut to the suite's `limit` by a fixed stratified sample (the same examples for
every unit), the train pool loses the texts that are also test texts, and every label must have the
2k train examples (k to train on, k for dev) that the task's largest k draws. k = 0 scores the test
sample zero-shot with the unit's calibration through the suite model's shared scores; k > 0 hands
it, with the train pool, to the kind's `run_seed` (promptlab.kinds.text: `promptlab.methods.run_method`).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from promptlab.catalog.catalog import Setup
from promptlab.errors import UserError
from promptlab.kinds import kind_of
from promptlab.methods.pipeline import classify
from promptlab.data.sampling import stratified_split
from promptlab.backends.scoring import LabelScorer
from promptlab.data.sources import SplitPlan
from promptlab.evaluation.suite import RunConfig, TaskEntry
from promptlab.evaluation.units import TEST_SAMPLE_SEED, SharedModel, TaskData, scalar_details

ROW_METRICS = ("accuracy", "macro_f1", "dev_accuracy")
# What run_method returns that rows keep under their own names, or leave out (predictions: too long).
_KNOWN_RESULT_FIELDS = (*ROW_METRICS, "train_steps", "seconds", "method", "k", "seed", "options", "sample",
                        "metrics", "predictions", "artifact")


def load_task_data(setup: Setup, limit: int | None, *, needs_train: bool) -> TaskData:
    task, kind = setup.task, kind_of(setup.task)
    test = kind.labelled(kind.examples(task, "test"), task.path)
    train = None
    if needs_train:
        train = kind.labelled(kind.train_pool(kind.examples(task, "train"), test, where=task.path), task.path)
    if limit is not None and limit < len(test):
        test = stratified_split(test, SplitPlan(test=limit, train=0), seed=TEST_SAMPLE_SEED)["test"]
    return TaskData(test=test, train=train)


def load_suite_data(setup: Setup, entry: TaskEntry, *, where: Path) -> TaskData:
    """The entry's test sample and, when a k > 0 runs, its train pool, checked against the largest k."""
    largest = max(entry.shots)
    data = load_task_data(setup, entry.limit, needs_train=largest > 0)
    if largest > 0:
        counts = Counter(example["label"] for example in data.train)
        scarcest = min(setup.task.labels, key=lambda label: counts[label])
        if counts[scarcest] < 2 * largest:
            fitting = [k for k in entry.shots if 2 * k <= counts[scarcest]]
            raise UserError(f"task '{entry.name}': label '{scarcest}' has {counts[scarcest]} training examples, "
                            f"but k={largest} draws {2 * largest} (k to train on and k for the dev set)",
                            where=where, fix=f"give the task its own shots:  tasks: {{{entry.name}: "
                                             f"{{shots: {fitting}}}}}")
    return data


def run_unit(config: RunConfig, setup: Setup, data: TaskData, model: SharedModel, *, batch_size: int) -> dict:
    """Score one unit; its row fields: the model's provenance, metrics, confusion and what the method reports."""
    loaded = model.loaded
    if config.k == 0:
        scorer = LabelScorer(model.backend, setup.template, setup.verbalizer, aggregate=config.options["aggregate"],
                             calibrate=config.options["calibrate"], batch_size=batch_size)
        classified = classify(scorer, data.test, data.prompts[config.template], setup.task.labels)
        result = {"accuracy": classified.metrics["accuracy"], "macro_f1": classified.metrics["macro_f1"],
                  "metrics": classified.metrics}
    else:
        result = kind_of(setup.task).run_seed(config.method, task=setup.task, setup=setup, model=config.model,
                                              loaded=lambda: loaded, pool=data.train, test=data.test, k=config.k,
                                              seed=config.seed, options=dict(config.options), save_to=None,
                                              device=model.device)
    return {
        **loaded.provenance(), "n_labels": len(setup.task.labels),
        "metrics": {name: result[name] for name in ROW_METRICS if result.get(name) is not None},
        "train_steps": result.get("train_steps", 0), "confusion": result["metrics"]["confusion"],
        "method_options": result.get("options"),  # every option the method used, defaults included
        "sample": result.get("sample"),  # the k-shot example ids drawn with this seed
        "artifact": result.get("artifact"),  # e.g. where a trained soft prompt was saved
        "details": scalar_details(result, _KNOWN_RESULT_FIELDS),
    }
