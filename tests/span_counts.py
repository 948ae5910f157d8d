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
    true = [spans(tags) for tags in gold]
    guessed = [spans(tags) for tags in predicted]
    hits = sum(len(a & b) for a, b in zip(true, guessed))
    total = sum(map(len, true)) + sum(map(len, guessed))
    return 2 * hits / total if total else 0.0


def conll_f1(path: Path) -> float:
    """The micro F1 of a predictions.conll file (token, gold tag, predicted tag; sentences split by blank lines)."""
    gold, predicted = [], []
    for block in path.read_text().strip("\n").split("\n\n"):
        rows = [line.split("\t") for line in block.splitlines() if line]
        gold.append([row[1] for row in rows])
        predicted.append([row[2] for row in rows])
    return micro_f1(gold, predicted)
