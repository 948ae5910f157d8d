"""Entity-level metrics with seqeval: strict IOB2 span matching, per type and micro-averaged."""
from __future__ import annotations

from typing import Sequence


def entity_metrics(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], types: Sequence[str]) -> dict:
    """precision, recall, f1 (micro) and per-type precision/recall/f1/support over IOB2 tag sequences."""
    # Imported here: seqeval brings scikit-learn and scipy, a second of start-up for every command.
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    report = classification_report([list(tags) for tags in gold], [list(tags) for tags in predicted],
                                   mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    empty = {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0}
    micro = report.get("micro avg", empty)
    return {"n": len(gold), "precision": float(micro["precision"]), "recall": float(micro["recall"]),
            "f1": float(micro["f1-score"]), "support": int(micro["support"]),
            "per_type": {name: {"precision": float(row["precision"]), "recall": float(row["recall"]),
                                "f1": float(row["f1-score"]), "support": int(row["support"])}
                         for name in types for row in [report.get(name, empty)]}}


def format_entity_metrics(metrics: dict) -> str:
    width = max(8, *(len(name) for name in metrics["per_type"]))
    lines = [f"micro  precision {metrics['precision']:.4f}   recall {metrics['recall']:.4f}   "
             f"F1 {metrics['f1']:.4f}   entities {metrics['support']}   sentences {metrics['n']}", "",
             f"{'type':<{width}}  precision  recall      f1  support"]
    for name, row in metrics["per_type"].items():
        lines.append(f"{name:<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1']:6.4f}  "
                     f"{row['support']:7d}")
    return "\n".join(lines)
