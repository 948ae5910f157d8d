"""Out of scope: answer `out_of_scope` when the top label probability is below a threshold.

Intent routing needs an "I don't know" that hands the message to a person. `--reject-below P`
applies it after any method that gives label probabilities; the metrics then count a rejection as
an answer that is not the gold label, and report how many were rejected and how accurate the
accepted answers were.
"""
from __future__ import annotations

from typing import Sequence

from promptlab.errors import UserError

OUT_OF_SCOPE = "out_of_scope"


def check_threshold(threshold: float | None) -> None:
    if threshold is not None and not 0 < threshold < 1:
        raise UserError(f"--reject-below must be a probability between 0 and 1, got {threshold}",
                        fix="e.g. --reject-below 0.5; leave it out to always answer a label")


def reject_below(probabilities: Sequence[Sequence[float]], labels: Sequence[str], threshold: float) -> list[str]:
    """The top label of each row, or OUT_OF_SCOPE where its probability is below `threshold`."""
    predicted = []
    for row in probabilities:
        best = max(range(len(labels)), key=row.__getitem__)
        predicted.append(labels[best] if row[best] >= threshold else OUT_OF_SCOPE)
    return predicted


def rejection_metrics(gold: Sequence[str], predicted: Sequence[str]) -> dict:
    """The share rejected, and the accuracy of the answers that were not rejected."""
    accepted = [(g, p) for g, p in zip(gold, predicted) if p != OUT_OF_SCOPE]
    return {"rejected": (len(gold) - len(accepted)) / len(gold) if gold else 0.0,
            "accepted_accuracy": sum(g == p for g, p in accepted) / len(accepted) if accepted else None}
