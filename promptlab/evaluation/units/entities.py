"""`promptlab eval` units on entity tasks: the sentences a suite reads, and one unit's run.

The test split is cut to the suite's `limit` by a fixed random sample of sentences (seed
runner.TEST_SAMPLE_SEED, kept in file order); the train pool is the task's train split, and every
type must have the 2k mentions (k to train on, k for dev) that the task's largest k draws. A unit
runs as `fewshot` and `zeroshot` run: k = 0 is
entity-prompt zero-shot with the unit's calibration and aggregation on the suite model; k > 0 the
unit's method (token-finetune or entity-prompt) on the seed's k-shot sample, k mentions per type (the kind's
`run_seed`, promptlab.kinds.entities).
Its score is seqeval's micro F1; the row keeps precision, recall, the dev score and per-type scores.
"""
from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from promptlab.catalog.catalog import Setup
from promptlab.data.tags import spans_of
from promptlab.errors import UserError
from promptlab.kinds import kind_of
from promptlab.evaluation.suite import RunConfig, TaskEntry
from promptlab.evaluation.units import TEST_SAMPLE_SEED, SharedModel, TaskData, scalar_details

ZERO_SHOT_METHOD = "entity-prompt"
# What the kind's run_seed returns that rows keep under their own names, or leave out (too long).
_KNOWN_RESULT_FIELDS = ("method", "seed", "k", "f1", "precision", "recall", "dev", "dev_metric", "train_steps",
                        "seconds", "artifact", "options", "sample", "metrics", "weights", "predicted_tags", "spans")


def load_suite_data(setup: Setup, entry: TaskEntry, *, where: Path) -> TaskData:
    """The entry's test sentences and, when a k > 0 runs, its train pool, checked against the largest k."""
    task, kind = setup.task, kind_of(setup.task)
    test = kind.labelled(kind.examples(task, "test"), task.path)
    if entry.limit is not None and entry.limit < len(test):
        chosen = sorted(random.Random(TEST_SAMPLE_SEED).sample(range(len(test)), entry.limit))
        test = [test[index] for index in chosen]
    largest = max(entry.shots)
    if largest == 0:
        return TaskData(test=test, train=None)
    train = kind.train_pool(kind.examples(task, "train"), test, where=task.path)
    mentions = Counter(span.type for example in train for span in spans_of(example.get("tags") or []))
    scarcest = min(task.labels, key=lambda name: mentions[name])
    if mentions[scarcest] < 2 * largest:
        fitting = [k for k in entry.shots if 2 * k <= mentions[scarcest]]
        raise UserError(f"task '{entry.name}': entity type '{scarcest}' has {mentions[scarcest]} mentions in the "
                        f"training sentences, but k={largest} draws {2 * largest} (k to train on and k for the dev "
                        f"set)", where=where, fix=f"give the task its own shots:  tasks: {{{entry.name}: "
                                                  f"{{shots: {fitting}}}}}")
    return TaskData(test=test, train=train)


def run_unit(config: RunConfig, setup: Setup, data: TaskData, model: SharedModel, *, batch_size: int) -> dict:
    """Run one unit as `fewshot`/`zeroshot` do; its row fields: the model's provenance, metrics, per-type scores."""
    method = config.method if config.k else ZERO_SHOT_METHOD
    kind = kind_of(setup.task)
    result = kind.run_seed(method, task=setup.task, setup=setup, model=config.model, loaded=lambda: model.loaded,
                           pool=data.train or [], test=data.test, k=config.k, seed=config.seed or 0,
                           options=dict(config.options), save_to=None, device=model.device)
    own = kind.own_models.get(method)  # token-finetune loads its model itself, not as the shared language model
    metrics = {name: result[name] for name in ("f1", "precision", "recall")}
    if result["dev"] is not None:
        metrics[f"dev_{result['dev_metric']}"] = result["dev"]
    return {
        **result["weights"], "model_fingerprint": model.fingerprint(own),
        "n_labels": len(setup.task.labels), "metrics": metrics, "per_type": result["metrics"]["per_type"],
        "train_steps": result["train_steps"], "method_options": result["options"], "sample": result["sample"],
        "artifact": result["artifact"], "details": scalar_details(result, _KNOWN_RESULT_FIELDS),
    }
