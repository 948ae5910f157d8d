"""The k-shot protocol: balanced, disjoint, repeatable, and clear about pools that are too small."""
from __future__ import annotations

import random
from collections import Counter

import pytest

from promptlab.errors import UserError
from promptlab.data.sampling import DEFAULT_SEEDS, parse_seeds, sample_kshot

LABELS = ["negative", "positive", "neutral"]


def pool(per_label: dict[str, int]) -> list[dict]:
    examples = [{"id": f"{label}-{i}", "text": f"{label} {i}", "label": label}
                for label, count in per_label.items() for i in range(count)]
    random.Random(0).shuffle(examples)
    return examples


def test_balanced_disjoint_and_within_the_pool():
    examples = pool({"negative": 30, "positive": 50, "neutral": 12})
    split = sample_kshot(examples, LABELS, k=6, seed=13)
    assert Counter(e["label"] for e in split.train) == {label: 6 for label in LABELS}
    assert Counter(e["label"] for e in split.dev) == {label: 6 for label in LABELS}
    train_ids, dev_ids = set(split.ids["train"]), set(split.ids["dev"])
    assert len(train_ids) == 18 and len(dev_ids) == 18 and not train_ids & dev_ids
    assert train_ids | dev_ids <= {e["id"] for e in examples}
    assert split.ids["train"] == [e["id"] for e in split.train]


def test_same_seed_same_sample_whatever_the_pool_order():
    examples = pool({"negative": 40, "positive": 40})
    first = sample_kshot(examples, LABELS[:2], k=8, seed=42)
    shuffled = list(reversed(examples))
    again = sample_kshot(shuffled, LABELS[:2], k=8, seed=42)
    assert again.ids == first.ids and again.checksum == first.checksum
    random.seed(999)  # global random state plays no part
    assert sample_kshot(examples, LABELS[:2], k=8, seed=42).ids == first.ids


def test_seeds_give_different_samples_and_checksums():
    examples = pool({"negative": 40, "positive": 40})
    splits = [sample_kshot(examples, LABELS[:2], k=8, seed=seed) for seed in DEFAULT_SEEDS]
    assert len({split.checksum for split in splits}) == len(DEFAULT_SEEDS)
    trains = [frozenset(split.ids["train"]) for split in splits]
    assert len(set(trains)) == len(DEFAULT_SEEDS)  # the samples differ, not only their checksums
    assert all(Counter(e["label"] for e in split.train) == {"negative": 8, "positive": 8} for split in splits)


def test_classes_are_interleaved_in_the_training_order():
    split = sample_kshot(pool({"negative": 40, "positive": 40}), LABELS[:2], k=16, seed=13)
    labels = [e["label"] for e in split.train]
    assert labels != sorted(labels)  # not all of one class first


def test_asking_for_more_than_exist_is_a_clear_error():
    examples = pool({"negative": 40, "positive": 9})
    with pytest.raises(UserError) as error:
        sample_kshot(examples, LABELS[:2], k=5, seed=13)
    assert "label 'positive' has 9 training example(s), but k=5 needs 10" in error.value.message
    assert "--k 4" in error.value.message
    suggested = sample_kshot(examples, LABELS[:2], k=4, seed=13)  # the suggested k works
    assert Counter(e["label"] for e in suggested.train + suggested.dev) == {"negative": 8, "positive": 8}


def test_unlabelled_examples_are_never_sampled():
    examples = pool({"negative": 10, "positive": 10}) + [{"id": f"u{i}", "text": "?", "label": None} for i in range(50)]
    split = sample_kshot(examples, LABELS[:2], k=5, seed=21)
    assert all(e["label"] is not None for e in split.train + split.dev)


@pytest.mark.parametrize("text, seeds", [("13,21,42", [13, 21, 42]), (" 7 ", [7]), ("1,2,", [1, 2])])
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text, message", [("13,x", "comma-separated integers"), ("", "names no seed"),
                                           ("13,13", "repeats a seed")])
def test_parse_seeds_rejects(text, message):
    with pytest.raises(UserError, match=message):
        parse_seeds(text)
