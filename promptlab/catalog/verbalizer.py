"""Verbalizers: each label of a task mapped to one or several words.

    labels:
      negative: [terrible, bad]
      positive: great

A word may be several tokens or several words ("not sure"). Leading spaces are not needed:
the backend joins the word to the prompt with the whitespace that the template puts before
the answer slot.

With many labels, the words may come from the label names, with overrides where a name reads badly:

    words_from: label_names          # card_arrival -> "card arrival"
    labels:
      Refund_not_showing_up: refund not showing up
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from promptlab.errors import UserError, did_you_mean
from promptlab.catalog.yamlfile import Mapping, Sequence, check_keys, load_yaml

AGGREGATIONS = ("logsumexp", "mean", "max")


@dataclass(frozen=True)
class Verbalizer:
    name: str
    task: str
    path: Path
    words: dict[str, tuple[str, ...]]  # label -> words, in the task's label order
    description: str = ""

    @property
    def content_hash(self) -> str:
        canonical = json.dumps({label: list(words) for label, words in self.words.items()}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def labels(self) -> list[str]:
        return list(self.words)


def load_verbalizer(path: Path, *, task: str, labels: list[str]) -> Verbalizer:
    """Load and check a verbalizer against the task's labels (returned in the task's order)."""
    data = load_yaml(path)
    from_names = _words_from_label_names(data, path)
    check_keys(data, ("labels", "description", WORDS_FROM), required=() if from_names else ("labels",), where=path)
    mapping = data["labels"] if "labels" in data else _no_overrides(data)
    if not isinstance(mapping, Mapping):
        raise UserError("'labels' must map each label to a word or a list of words", where=path,
                        line=data.line_of("labels"), fix="write e.g.  labels: {negative: [bad], positive: [good]}")
    for label in mapping:
        if label not in labels:
            raise UserError(f"label '{label}' is not a label of task '{task}' ({', '.join(labels)})",
                            where=path, line=mapping.line_of(label), fix=did_you_mean(str(label), labels))
    missing = [label for label in labels if label not in mapping and not from_names]
    if missing:
        raise UserError(f"no words for label{'s' if len(missing) > 1 else ''} {', '.join(missing)} of task '{task}'",
                        where=path, line=mapping.line, fix="give every label of the task at least one word")
    words = {label: _words(mapping[label], label, mapping.line_of(label), path) if label in mapping
             else (label_name_words(label),) for label in labels}
    _reject_shared_words(words, path)
    description = data.get("description", "")
    return Verbalizer(name=path.stem, task=task, path=path, words=words, description=str(description))


def verbalizer_from_words(words: dict, *, name: str, task: str, where: Path) -> Verbalizer:
    """A verbalizer given as a mapping in code (label -> word or words), checked as a file's would be."""
    checked = {str(label): _words(value, str(label), 0, where) for label, value in words.items()}
    _reject_shared_words(checked, where)
    return Verbalizer(name=name, task=task, path=where, words=checked)


WORDS_FROM = "words_from"
WORD_SOURCES = ("label_names",)


def label_name_words(label: str) -> str:
    """A label name read as words: underscores become spaces (`card_arrival` -> "card arrival")."""
    return " ".join(label.replace("_", " ").split())


def _no_overrides(data: Mapping) -> Mapping:
    empty = Mapping()
    empty.line, empty.key_lines = data.line, {}
    return empty


def _words_from_label_names(data: Mapping, path: Path) -> bool:
    if WORDS_FROM not in data:
        return False
    if data[WORDS_FROM] not in WORD_SOURCES:
        raise UserError(f"{WORDS_FROM}: {data[WORDS_FROM]!r} is not one of: {', '.join(WORD_SOURCES)}", where=path,
                        line=data.line_of(WORDS_FROM), fix=f"write  {WORDS_FROM}: label_names  or leave the key out")
    return True


def _words(value, label: str, line: int, path: Path) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    lines = value.item_lines if isinstance(value, Sequence) else [line] * len(items)
    if not items:
        raise UserError(f"label '{label}' has an empty word list", where=path, line=line,
                        fix=f"give '{label}' at least one word")
    words = []
    for item, item_line in zip(items, lines):
        if isinstance(item, bool):
            raise UserError(f"label '{label}' has the boolean {str(item).lower()} where a word was meant",
                            where=path, line=item_line, fix=f'quote it: "{str(item).lower()}"')
        if isinstance(item, int):
            item = str(item)
        if not isinstance(item, str):
            raise UserError(f"label '{label}': {item!r} is not a word", where=path, line=item_line,
                            fix="write each word as text, quoted if in doubt")
        if not item.strip():
            raise UserError(f"label '{label}' has an empty word", where=path, line=item_line,
                            fix="remove it or write the word")
        words.append(item)
    return tuple(words)


def _reject_shared_words(words: dict[str, tuple[str, ...]], path: Path) -> None:
    owner: dict[str, str] = {}
    for label, label_words in words.items():
        for word in label_words:
            key = word.strip()
            if key in owner and owner[key] != label:
                raise UserError(f"the word '{key}' is given for both '{owner[key]}' and '{label}'", where=path,
                                fix="a word can verbalize only one label")
            owner[key] = label
