"""Continual-learning metrics over the accuracy matrix R (Lopez-Paz & Ranzato 2017, GEM).

R[i][j] is the accuracy on task j after learning tasks 0..i; None where it was not measured.
- average accuracy: mean over tasks of R[T-1][j], after the last task.
- backward transfer (BWT): mean over j < T-1 of R[T-1][j] - R[j][j]: negative is forgetting.
- forward transfer (FWT): mean over j > 0 of R[j-1][j] - b_j, where b_j is the untrained model's
  accuracy on task j (same uncalibrated scoring): what learning earlier tasks does for a new one.
"""
from __future__ import annotations

import statistics
from typing import Sequence

Matrix = list[list[float | None]]


def average_accuracy(matrix: Matrix) -> float:
    return statistics.mean(matrix[-1])


def backward_transfer(matrix: Matrix) -> float | None:
    last = len(matrix) - 1
    if last == 0:
        return None
    return statistics.mean(matrix[last][j] - matrix[j][j] for j in range(last))


def forward_transfer(matrix: Matrix, baseline: Sequence[float]) -> float | None:
    if len(matrix) == 1:
        return None
    return statistics.mean(matrix[j - 1][j] - baseline[j] for j in range(1, len(matrix)))


def seen_average(matrix: Matrix) -> list[float]:
    """After each task i: the mean accuracy over tasks 0..i (the learning curve)."""
    return [statistics.mean(row[: i + 1]) for i, row in enumerate(matrix)]


def mean_matrix(matrices: Sequence[Matrix]) -> Matrix:
    """Entry by entry mean over seeds; None stays None."""
    return [[None if row[0][j] is None else statistics.mean(r[j] for r in row) for j in range(len(row[0]))]
            for row in zip(*matrices)]
