"""Task kinds: one object per kind gives every stage above it what differs between kinds.

    kinds/kind.py       the protocol: read and sample examples, check a method and its options, ...
    kinds/text.py       classification (a task file's default `kind`): one label per text
    kinds/entities.py   entities: entity spans over token sequences (named-entity recognition)

A task file names its kind (promptlab.catalog.task); `kind_of(task)` is its object. Commands, suites,
`predict` and `serve` take it and call it, and never ask which kind they hold. Importing this package
loads no model library: the CLI lists the methods from it.
"""
from __future__ import annotations

from pathlib import Path

from promptlab.catalog.task import Task
from promptlab.kinds.entities import ENTITIES
from promptlab.kinds.kind import Kind
from promptlab.kinds.text import TEXT

KINDS: dict[str, Kind] = {kind.name: kind for kind in (TEXT, ENTITIES)}
ALL_METHODS = tuple(method for kind in KINDS.values() for method in kind.methods)


def kind_of(task: Task) -> Kind:
    return KINDS[task.kind]


def method_kind(method: str) -> Kind:
    """The kind whose tasks a (few-shot) method runs on."""
    return next(kind for kind in KINDS.values() if method in kind.methods)


def task_examples(task: Task, split: str = "test", *, data: str | Path | None = None,
                  limit: int | None = None) -> list[dict]:
    """The examples of a task's split (or of `data`, a file that replaces it), read by the task's kind."""
    return kind_of(task).examples(task, split, data=data, limit=limit)
