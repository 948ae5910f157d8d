"""The classification metrics, counted by hand, agree with scikit-learn's (the independent reference)."""
import random

import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from promptlab.metrics.text import classification_metrics

LABELS = ["negative", "neutral", "positive"]


def reference(gold, predicted, labels):
    precision, recall, f1, support = precision_recall_fscore_support(gold, predicted, labels=labels, zero_division=0)
    return {"accuracy": accuracy_score(gold, predicted),
            "macro_f1": f1_score(gold, predicted, labels=labels, average="macro", zero_division=0),
            "per_label": {label: (p, r, f, s) for label, p, r, f, s in zip(labels, precision, recall, f1, support)},
            "matrix": confusion_matrix(gold, predicted, labels=labels).tolist()}


@pytest.mark.parametrize("seed", range(6))
def test_metrics_match_scikit_learn(seed):
    generator = random.Random(seed)
    n = generator.randint(1, 40)
    gold = [generator.choice(LABELS) for _ in range(n)]
    # Some predictions copy the gold label, some are wrong, some name a label outside the task
    # (out_of_scope after --reject-below), and one label may never be predicted at all.
    choices = LABELS[:2] + ["out_of_scope"] if seed % 2 else LABELS
    predicted = [truth if generator.random() < 0.5 else generator.choice(choices) for truth in gold]
    ours, theirs = classification_metrics(gold, predicted, LABELS), reference(gold, predicted, LABELS)
    assert ours["n"] == n
    assert ours["accuracy"] == pytest.approx(theirs["accuracy"])
    assert ours["macro_f1"] == pytest.approx(theirs["macro_f1"])
    assert ours["confusion"] == {"labels": LABELS, "matrix": theirs["matrix"]}
    for label, (precision, recall, f1, support) in theirs["per_label"].items():
        row = ours["per_label"][label]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((precision, recall, f1))
        assert row["support"] == support


def test_a_label_never_seen_nor_predicted_scores_zero():
    metrics = classification_metrics(["a", "a", "b"], ["a", "b", "b"], ["a", "b", "c"])
    assert metrics["per_label"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert metrics["accuracy"] == pytest.approx(2 / 3)
