"""Entity F1 counted from tag sequences by hand, to check the F1 promptlab reports against (strict IOB2:
an entity starts at B-X and runs over the I-X after it; an I-X without its B-X is no entity)."""
from __future__ import annotations

from pathlib import Path


def spans(tags: list[str]) -> set[tuple[int, int, str]]:
    found, start, kind = set(), None, None
    for index, tag in enumerate([*tags, "O"]):
        if start is not None and tag != f"I-{kind}":
            found.add((start, index, kind))
            start = None
        if tag.startswith("B-"):
            start, kind = index, tag[2:]
    return found


def micro_f1(gold: list[list[str]], predicted: list[list[str]]) -> float:
    return scores(gold, predicted)["f1"]


def scores(gold: list[list[str]], predicted: list[list[str]], kind: str | None = None) -> dict[str, float]:
    """Precision, recall and F1 of exact spans (of one type, or of all), counted over every sentence."""
    true = [{span for span in spans(tags) if kind in (None, span[2])} for tags in gold]
    guessed = [{span for span in spans(tags) if kind in (None, span[2])} for tags in predicted]
    hits = sum(len(a & b) for a, b in zip(true, guessed))
    n_true, n_guessed = sum(map(len, true)), sum(map(len, guessed))
    return {"precision": hits / n_guessed if n_guessed else 0.0, "recall": hits / n_true if n_true else 0.0,
            "f1": 2 * hits / (n_true + n_guessed) if n_true + n_guessed else 0.0}


def conll_columns(path: Path) -> tuple[list[list[str]], list[list[str]], list[list[str]]]:
    """A predictions.conll file (token, gold tag, predicted tag; sentences split by blank lines): its
    tokens, gold tags and predicted tags, sentence by sentence."""
    columns = ([], [], [])
    for block in path.read_text().strip("\n").split("\n\n"):
        rows = [line.split("\t") for line in block.splitlines() if line]
        for index, column in enumerate(columns):
            column.append([row[index] for row in rows])
    return columns


def conll_f1(path: Path) -> float:
    """The micro F1 of a predictions.conll file."""
    _, gold, predicted = conll_columns(path)
    return micro_f1(gold, predicted)
