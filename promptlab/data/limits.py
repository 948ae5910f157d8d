"""Which examples `--limit N` takes from a split or a user's file, and saying so.

    first        the first N, in file order (the default: what a user reading the file expects)
    stratified   the sample the eval suites take (seed 0): each label keeps its share of the N, so a
                 file sorted by label does not give a one-class test set; sequences without one label
                 (entity tasks) are sampled uniformly. Either way the rows stay in file order.

Every cut is announced on standard error (which rows of how many), with a notice when the first N
hold fewer labels than the file.
"""
from __future__ import annotations

import random
from pathlib import Path

import click

from promptlab.data.sampling import stratified_split
from promptlab.data.sources.base import SplitPlan

LIMIT_BY = ("first", "stratified")
DEFAULT_LIMIT_BY = "first"
SAMPLE_SEED = 0  # the eval suites' test sample (promptlab.evaluation.units.TEST_SAMPLE_SEED)


def limit_examples(examples: list[dict], limit: int | None, by: str = DEFAULT_LIMIT_BY, *,
                   where: Path | str | None = None) -> list[dict]:
    """`limit` of `examples` as `by` chooses them, in file order; all of them when `limit` is None or larger."""
    if limit is None or limit >= len(examples):
        return examples
    if by == "first":
        taken = examples[:limit]
        how = f"the first {limit}"
    else:
        positions = _stratified_positions(examples, limit)
        taken = [examples[position] for position in positions]
        how = f"a stratified sample of {limit} (seed {SAMPLE_SEED})"
    click.echo(f"{f'{where}: ' if where else ''}--limit {limit}: {how} of {len(examples)} examples "
               f"(--limit-by {by})", err=True)
    if by == "first" and _labels(taken) < _labels(examples):
        click.echo(f"notice: the first {limit} hold {len(_labels(taken))} of the {len(_labels(examples))} labels; "
                   "--limit-by stratified takes each label's share", err=True)
    return taken


def _stratified_positions(examples: list[dict], limit: int) -> list[int]:
    if all(example.get("label") is not None for example in examples):
        numbered = [{**example, "id": f"{position:09d}", "position": position}
                    for position, example in enumerate(examples)]
        sample = stratified_split(numbered, SplitPlan(test=limit, train=0), seed=SAMPLE_SEED)["test"]
        return sorted(example["position"] for example in sample)
    return sorted(random.Random(SAMPLE_SEED).sample(range(len(examples)), limit))


def _labels(examples: list[dict]) -> set:
    return {example.get("label") for example in examples} - {None}
