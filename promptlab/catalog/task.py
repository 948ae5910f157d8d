"""Tasks: the label order of a classification problem and, optionally, where its data lives.

    labels: [negative, positive]
    data: {train: data/train.jsonl, test: data/test.jsonl}   # relative to this file's folder

A data entry may also be `source:NAME/SPLIT` (a registered offline source) or a mapping for
`datasets.load_dataset` ({dataset: ..., config: ..., split: ...}).

`kind` says what sort of task it is: `classification` (default) or `entities` (promptlab.kinds gives each
kind its reader, methods and metrics; here is only what a task file of the kind must satisfy),
whose `labels` are entity types and whose data are token sequences with tags in `scheme`
(IOB2 by default; IOB1, BIOES and BMES are read too), in CoNLL files or JSONL.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from promptlab.errors import UserError, did_you_mean
from promptlab.catalog.yamlfile import Mapping, check_keys, load_yaml

TASK_KEYS = ("labels", "data", "description", "label_field", "id_field", "template", "kind", "scheme", "model")
TAG_SCHEMES = ("IOB2", "IOB1", "BIOES", "BMES")  # promptlab.data.tags reads each into IOB2
SPLITS = ("train", "dev", "test")
NOT_AN_ENTITY = "O"  # the verbalizer label of a candidate span that is no entity (the tag of outside tokens)


@dataclass(frozen=True)
class KindRules:
    """What a task file of a kind must satisfy, and what its verbalizers answer besides its labels."""

    description: str
    min_labels: int
    extra_answers: tuple[str, ...] = ()


KIND_RULES = {"classification": KindRules("one label per text", 2),
              "entities": KindRules("entity spans in token sequences (named-entity recognition)", 1,
                                    (NOT_AN_ENTITY,))}
DEFAULT_KIND = "classification"


@dataclass(frozen=True)
class Task:
    name: str
    path: Path
    labels: list[str]
    data: dict = field(default_factory=dict)  # split -> spec (path text, source:..., or mapping)
    description: str = ""
    label_field: str = "label"
    id_field: str = "id"
    template: str | None = None  # the template used when --template is left out
    kind: str = DEFAULT_KIND
    scheme: str = "IOB2"  # the tag scheme of an entity task's data files
    model: str | None = None  # the model used when --model is left out (one that reads the task's language)

    @property
    def answer_labels(self) -> list[str]:
        """The labels a verbalizer covers: the task's, plus its kind's extra answers ("not an entity")."""
        return self.labels + list(KIND_RULES[self.kind].extra_answers)

    def data_spec(self, split: str = "test", *, data: str | Path | None = None) -> tuple[str | dict, Path]:
        """Where a split's examples are (or `data`'s, a file that replaces it) and the folder it is relative to;
        the task's kind reads them (promptlab.kinds)."""
        if data is not None:
            return str(data), Path.cwd()
        if split not in self.data:
            raise UserError(f"task '{self.name}' has no '{split}' data", where=self.path,
                            fix=f"add  data: {{{split}: FILE}}  to the task, or pass --data FILE"
                            + (f" (splits defined: {', '.join(self.data)})" if self.data else ""))
        return self.data[split], self.path.parent


def load_task(path: Path) -> Task:
    data = load_yaml(path)
    check_keys(data, TASK_KEYS, required=("labels",), where=path)
    kind = str(data.get("kind", DEFAULT_KIND))
    if kind not in KIND_RULES:
        raise UserError(f"unknown task kind '{kind}'", where=path, line=data.line_of("kind"),
                        fix=did_you_mean(kind, KIND_RULES))
    rules = KIND_RULES[kind]
    labels = data["labels"]
    if not isinstance(labels, list) or len(labels) < rules.min_labels:
        least = {1: "one label name", 2: "two label names"}[rules.min_labels]
        raise UserError(f"'labels' must be a list of at least {least}", where=path,
                        line=data.line_of("labels"), fix="write e.g.  labels: [negative, positive]")
    for label in labels:
        if not isinstance(label, (str, int)) or isinstance(label, bool):
            raise UserError(f"label {label!r} must be a name", where=path, line=data.line_of("labels"),
                            fix="quote it")
    labels = [str(label) for label in labels]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise UserError(f"label '{duplicates[0]}' is listed twice", where=path, line=data.line_of("labels"),
                        fix="list each label once")
    reserved = [label for label in labels if label in rules.extra_answers]
    if reserved:
        raise UserError(f"'{reserved[0]}' cannot be a label of a {kind} task: it names the answer "
                        f"'not one of the labels'", where=path, line=data.line_of("labels"), fix="rename the label")
    scheme = str(data.get("scheme", "IOB2"))
    if scheme not in TAG_SCHEMES:
        raise UserError(f"unknown tag scheme '{scheme}'", where=path, line=data.line_of("scheme"),
                        fix=did_you_mean(scheme, TAG_SCHEMES))
    splits = data.get("data", {})
    if not isinstance(splits, Mapping):
        raise UserError("'data' must map splits to files", where=path, line=data.line_of("data"),
                        fix="write e.g.  data: {train: train.jsonl, test: test.jsonl}")
    check_keys(splits, SPLITS, where=path)
    return Task(name=path.stem, path=path, labels=labels, data=dict(splits),
                description=str(data.get("description", "")),
                label_field=str(data.get("label_field", "label")), id_field=str(data.get("id_field", "id")),
                template=_named(data, "template", path, "write e.g.  template: t1  (templates/<task>/t1.jinja)"),
                kind=kind, scheme=scheme,
                model=_named(data, "model", path, "write e.g.  model: gemma3-270m  (an alias, folder or hub id)"))


def _named(data, key: str, path: Path, example: str) -> str | None:
    """The text of an optional key that names a file or model."""
    name = data.get(key)
    if name is not None and not isinstance(name, str):
        raise UserError(f"'{key}' must be a name, not {name!r}", where=path, line=data.line_of(key), fix=example)
    return name
