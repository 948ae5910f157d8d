"""Leakage between splits: a train pool must not hold the texts it will be tested on.

Upstream sets repeat texts (BBC News republishes articles, product reviews are quoted twice), so a
seeded split can put one text in both train and test, and a k-shot sample could then train on a
test example. Before a train pool is used, its examples whose text is also in the test split are
dropped, with a notice. "Text" is every text field of the example but its id and gold answer (so
a per-example number such as a rating does not hide a copy): a classification example's text
fields, an entity sentence's tokens (its tags are the answer). Repeats inside the train pool are
no leak and stay.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import click


ANSWER_FIELDS = ("id", "label", "tags")


def _text_of(example: dict) -> tuple:
    return tuple(sorted((name, value if isinstance(value, str) else tuple(value))
                        for name, value in example.items() if name not in ANSWER_FIELDS and _is_text(value)))


def _is_text(value) -> bool:
    return isinstance(value, str) or (isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value)
                                      and len(value) > 0)


def train_pool_without_test_texts(train: Sequence[dict], test: Sequence[dict], *, where: Path | str) -> list[dict]:
    """The train examples whose text is not in `test`, with a notice of how many were dropped."""
    test_texts = {_text_of(example) for example in test}
    kept = [example for example in train if _text_of(example) not in test_texts]
    if len(kept) < len(train):
        click.echo(f"notice: {where}: {len(train) - len(kept)} train example(s) have the text of a test example "
                   f"and are left out of the train pool; {len(kept)} remain", err=True)
    return kept
