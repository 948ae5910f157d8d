"""Classification metrics over label names, in the task's label order.

Counted from the confusion matrix in plain Python: every command reports them, and importing
scikit-learn's metrics (scipy with it) took about a third of a short command's start-up.
"""
from __future__ import annotations

import statistics
from typing import Sequence


def classification_metrics(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> dict:
    """accuracy, macro_f1, per-label precision/recall/f1/support and the confusion matrix (rows gold).

    As scikit-learn counts them with zero_division=0: a predicted label outside `labels` counts
    against recall only, and a ratio with nothing to divide by is 0.
    """
    labels = list(labels)
    index = {label: position for position, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for truth, guess in zip(gold, predicted):
        if truth in index and guess in index:
            matrix[index[truth]][index[guess]] += 1
    support = [sum(1 for truth in gold if truth == label) for label in labels]
    chosen = [sum(1 for guess in predicted if guess == label) for label in labels]
    per_label = {}
    for position, label in enumerate(labels):
        hits = matrix[position][position]
        per_label[label] = {"precision": _ratio(hits, chosen[position]), "recall": _ratio(hits, support[position]),
                            "f1": _ratio(2 * hits, support[position] + chosen[position]), "support": support[position]}
    return {
        "n": len(gold),
        "accuracy": _ratio(sum(truth == guess for truth, guess in zip(gold, predicted)), len(gold)),
        "macro_f1": statistics.fmean(row["f1"] for row in per_label.values()) if labels else 0.0,
        "per_label": per_label,
        "confusion": {"labels": labels, "matrix": matrix},
    }


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def format_metrics(metrics: dict) -> str:
    """A plain-text report: headline numbers, per-label table, confusion matrix."""
    labels = metrics["confusion"]["labels"]
    width = max(10, *(len(label) for label in labels))
    lines = [f"accuracy  {metrics['accuracy']:.4f}   macro-F1  {metrics['macro_f1']:.4f}   n  {metrics['n']}", "",
             f"{'label':<{width}}  precision  recall     f1  support"]
    for label, row in metrics["per_label"].items():
        lines.append(f"{label:<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1']:5.4f}  {row['support']:7d}")
    lines += ["", "confusion (rows: gold, columns: predicted)",
              " " * width + "  " + "  ".join(f"{label[:10]:>10}" for label in labels)]
    for label, row in zip(labels, metrics["confusion"]["matrix"]):
        lines.append(f"{label:<{width}}  " + "  ".join(f"{count:>10d}" for count in row))
    return "\n".join(lines)


def seed_std(values: Sequence[float]) -> float:
    """Sample standard deviation over seeds, 0 for a single run (as LM-BFF's mean (std) tables)."""
    return statistics.stdev(values) if len(values) > 1 else 0.0
