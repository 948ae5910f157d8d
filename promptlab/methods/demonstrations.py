"""In-context demonstrations: training examples rendered with the template, the gold word in the slot.

    demonstration = template(train example) with the first word of its gold label in the answer slot
    test prompt   = Prompt(before = demo_1 + sep + ... + demo_m + sep + prompt.before, after = prompt.after)

Each test example gets `per_class` demonstrations of every label, either drawn at random (seeded,
in random order) or the most similar by cosine of mean-pooled hidden states (most similar last,
next to the test example, as in Liu et al., 2022).
"""
from __future__ import annotations

import itertools
import random
from typing import Iterator, Sequence

import torch

from promptlab.catalog.template import Prompt, Template
from promptlab.catalog.verbalizer import Verbalizer

SELECTIONS = ("random", "similar")


def render_demonstration(template: Template, verbalizer: Verbalizer, example: dict) -> str:
    return template.render(example).text(verbalizer.words[example["label"]][0])


def with_demonstrations(prompt: Prompt, demonstrations: Sequence[str], separator: str) -> Prompt:
    context = "".join(demonstration + separator for demonstration in demonstrations)
    return Prompt(before=context + prompt.before, after=prompt.after)


def random_choice(train_labels: Sequence[str], labels: Sequence[str], per_class: int, count: int,
                  seed: int | str) -> list[list[int]]:
    """For each of `count` test examples: `per_class` train rows of every label, shuffled together."""
    return list(itertools.islice(random_draws(train_labels, labels, per_class, seed), count))


def random_draws(train_labels: Sequence[str], labels: Sequence[str], per_class: int,
                 seed: int | str) -> Iterator[list[int]]:
    """The endless seeded sequence random_choice takes its draws from: draw i is for the i-th example."""
    rng = random.Random(seed)
    by_label = {label: [i for i, gold in enumerate(train_labels) if gold == label] for label in labels}
    while True:
        rows = [i for label in labels for i in rng.sample(by_label[label], min(per_class, len(by_label[label])))]
        rng.shuffle(rows)
        yield rows


def similar_choice(train_features: torch.Tensor, test_features: torch.Tensor, train_labels: Sequence[str],
                   labels: Sequence[str], per_class: int) -> list[list[int]]:
    """For each test example: the `per_class` most similar train rows of every label, least similar first."""
    similarity = _normalise(test_features) @ _normalise(train_features).T  # [test, train]
    chosen = []
    for row in similarity:
        picked = []
        for label in labels:
            candidates = [i for i, gold in enumerate(train_labels) if gold == label]
            ranked = sorted(candidates, key=lambda i: (-float(row[i]), i))
            picked += ranked[:per_class]
        chosen.append(sorted(picked, key=lambda i: (float(row[i]), i)))
    return chosen


def _normalise(features: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(features.float(), dim=-1)
