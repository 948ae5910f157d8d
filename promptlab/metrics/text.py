"""Classification metrics over label names, in the task's label order."""
from __future__ import annotations

import statistics
from typing import Sequence

from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)


def classification_metrics(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> dict:
    """accuracy, macro_f1, per-label precision/recall/f1/support and the confusion matrix (rows gold)."""
    labels = list(labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=labels, zero_division=0)
    return {
        "n": len(gold),
        "accuracy": float(accuracy_score(gold, predicted)),
        "macro_f1": float(f1_score(gold, predicted, labels=labels, average="macro", zero_division=0)),
        "per_label": {label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for label, p, r, f, s in zip(labels, precision, recall, f1, support)},
        "confusion": {"labels": labels, "matrix": confusion_matrix(gold, predicted, labels=labels).tolist()},
    }


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
