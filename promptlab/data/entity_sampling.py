"""Greedy k-shot sampling for entity tasks (Yang & Katiyar, 2020): sentences until every type is seen k times.

Types are filled rarest first: random sentences holding the type are added until it has k mentions;
then every chosen sentence whose removal keeps all types at k or more is dropped again, so the
sample is no larger than it must be. The dev set is a second such sample from the sentences left.
The draw depends only on (pool, k, seed), like the text tasks' `promptlab.data.sampling.sample_kshot`.
"""
from __future__ import annotations

import random
from collections import Counter
from typing import Sequence

from promptlab.data.tags import spans_of
from promptlab.errors import UserError
from promptlab.data.sampling import KShotSplit, ids_checksum


def sample_entity_kshot(examples: Sequence[dict], types: Sequence[str], k: int, seed: int) -> KShotSplit:
    """k mentions of every type to train on and k more for the dev set, in disjoint sentences."""
    if k < 1:
        raise UserError(f"k must be at least 1, got {k}", fix="pass --k 5 or another positive k")
    rng = random.Random(seed)
    pool = sorted((example for example in examples if example.get("tags")), key=lambda e: str(e["id"]))
    available = Counter(label for example in pool for label in _types(example))
    for entity_type in types:
        if available[entity_type] < 2 * k:
            raise UserError(f"entity type '{entity_type}' has {available[entity_type]} mention(s) in the training "
                            f"data, but k={k} needs {2 * k} ({k} to train on and {k} for the dev set)",
                            fix=f"pass --k {max(available[entity_type] // 2, 1)} or less, or add training sentences")
    train = _greedy(pool, types, k, rng)
    chosen = {example["id"] for example in train}
    dev = _greedy([example for example in pool if example["id"] not in chosen], types, k, rng)
    ids = {"train": [str(example["id"]) for example in train], "dev": [str(example["id"]) for example in dev]}
    return KShotSplit(train, dev, ids, ids_checksum(ids))


def _types(example: dict) -> list[str]:
    return [span.type for span in spans_of(example["tags"])]


def _greedy(pool: list[dict], types: Sequence[str], k: int, rng: random.Random) -> list[dict]:
    frequency = Counter(label for example in pool for label in _types(example))
    counts: Counter = Counter()
    chosen: list[dict] = []
    for entity_type in sorted(types, key=lambda name: (frequency[name], name)):
        candidates = [example for example in pool if entity_type in _types(example) and example not in chosen]
        rng.shuffle(candidates)
        while counts[entity_type] < k:
            if not candidates:
                raise UserError(f"the sentences left for the dev set hold too few mentions of '{entity_type}' "
                                f"for k={k} (its mentions come in clusters)", fix="pass a smaller --k")
            example = candidates.pop()
            chosen.append(example)
            counts.update(_types(example))
    rng.shuffle(chosen)
    for example in list(chosen):  # drop what is not needed, in a seeded order
        without = counts - Counter(_types(example))
        if all(without[entity_type] >= k for entity_type in types):
            chosen.remove(example)
            counts = without
    return chosen
