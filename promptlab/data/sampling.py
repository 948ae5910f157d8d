"""The k-shot protocol of LM-BFF: k training and k dev examples per class, drawn from the train pool.

Each class's pool is ordered by id before it is shuffled with the seed's own `random.Random`, so the
draw depends only on (pool, k, seed), not on the order of the file or on global random state. The
sampled ids and their checksum are recorded with every result, so a run can be checked and repeated.
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Protocol, Sequence

from promptlab.errors import UserError

DEFAULT_SEEDS = (13, 21, 42, 87, 100)  # LM-BFF's seeds


class SplitSizes(Protocol):
    """The sizes of a stratified split (promptlab.data.sources.base.SplitPlan is one)."""

    test: int | float  # a count, or a fraction of all examples
    train: int | None  # a count (a cap), or None for every example not in test


@dataclass(frozen=True)
class KShotSplit:
    train: list[dict]  # k per class, classes interleaved in a seeded order
    dev: list[dict]  # k per class, disjoint from train
    ids: dict[str, list[str]]  # {"train": [...], "dev": [...]}, in the order above
    checksum: str  # sha256 of the ids, to compare runs at a glance

    def describe(self) -> dict:
        return {"train_ids": self.ids["train"], "dev_ids": self.ids["dev"], "checksum": self.checksum}


def sample_kshot(examples: Sequence[dict], labels: Sequence[str], k: int, seed: int) -> KShotSplit:
    """k train and k dev examples of every label, disjoint, the same for the same (examples, k, seed)."""
    if k < 1:
        raise UserError(f"k must be at least 1, got {k}", fix="pass --k 16 (LM-BFF's setting) or another positive k")
    rng = random.Random(seed)
    train: list[dict] = []
    dev: list[dict] = []
    for label in labels:
        pool = sorted((example for example in examples if example.get("label") == label), key=lambda e: str(e["id"]))
        if len(pool) < 2 * k:
            raise UserError(f"label '{label}' has {len(pool)} training example(s), but k={k} needs {2 * k} "
                            f"({k} to train on and {k} for the dev set)",
                            fix=f"pass --k {len(pool) // 2} or less, or add training examples"
                            if len(pool) >= 2 else "add training examples for this label")
        rng.shuffle(pool)
        train += pool[:k]
        dev += pool[k:2 * k]
    rng.shuffle(train)  # interleave the classes so that any prefix is roughly balanced
    rng.shuffle(dev)
    ids = {"train": [str(example["id"]) for example in train], "dev": [str(example["id"]) for example in dev]}
    return KShotSplit(train, dev, ids, ids_checksum(ids))


def ids_checksum(ids: dict[str, list[str]]) -> str:
    return hashlib.sha256(json.dumps(ids, sort_keys=True).encode()).hexdigest()[:16]


def parse_seeds(text: str) -> list[int]:
    """'13,21,42' -> [13, 21, 42]; anything else is a UserError."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--seeds must be comma-separated integers, got '{text}'",
                        fix="e.g. --seeds 13,21,42") from None
    if not seeds:
        raise UserError("--seeds names no seed", fix="e.g. --seeds 13,21,42")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds repeats a seed: '{text}'", fix="list each seed once")
    return seeds


def stratified_split(examples: list[dict], plan: SplitSizes, *, seed: int) -> dict[str, list[dict]]:
    """Seeded train/test splits with each label's share kept, each in a seeded random order
    (so `--limit N` takes a fair sample rather than the file's first label)."""
    rng = random.Random(seed)
    by_label: dict[str, list[dict]] = {}
    for example in examples:
        by_label.setdefault(example["label"], []).append(example)
    for label in sorted(by_label):
        rng.shuffle(by_label[label])
    test_size = round(plan.test * len(examples)) if isinstance(plan.test, float) else plan.test
    test = _take(by_label, test_size)
    train_size = sum(map(len, by_label.values())) if plan.train is None else plan.train
    train = _take(by_label, train_size)
    splits = {"train": sorted(train, key=_by_id), "test": sorted(test, key=_by_id)}
    for name in ("train", "test"):
        rng.shuffle(splits[name])
    return splits


def _take(by_label: dict[str, list[dict]], size: int) -> list[dict]:
    """Remove and return `size` examples, each label giving its proportional share."""
    quotas = _proportional_quotas(size, {label: len(group) for label, group in by_label.items()})
    taken = []
    for label, quota in quotas.items():
        taken += by_label[label][:quota]
        del by_label[label][:quota]
    return taken


def _proportional_quotas(size: int, available: dict[str, int]) -> dict[str, int]:
    """Largest-remainder shares of `size` in proportion to `available`, never above it."""
    total = sum(available.values())
    size = min(size, total)
    exact = {label: size * count / total if total else 0 for label, count in available.items()}
    quotas = {label: int(share) for label, share in exact.items()}
    by_remainder = sorted(exact, key=lambda label: (quotas[label] - exact[label], label))
    for label in by_remainder[:size - sum(quotas.values())]:
        quotas[label] += 1
    return quotas


def _by_id(example: dict) -> str:
    return example["id"]
