"""Reading token sequences with entity tags: CoNLL files, JSONL, registered sources and hub data sets.

CoNLL: one token per line, its tag in the last column (other columns, such as part of speech, are
ignored); a blank or whitespace-only line ends a sentence; `-DOCSTART-` lines are skipped and start a
new document. JSONL: one object per line with `tokens` and `tags` (lists of equal length), `id` optional.
A `.jsonl` file is read as JSONL, any other file as CoNLL.

Every example is {"id", "tokens", "tags" (IOB2, or None when unlabelled), "document"}; tags are
checked against the task's scheme and entity types, with the file and line of any mistake.
"""
from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from promptlab.data.readers import (
    SOURCE_PREFIX,
    Example,
    check_hub_spec,
    load_hub_split,
    read_jsonl,
    read_text,
    resolve_data_files,
    source_split_path,
)
from promptlab.data.tags import TagError, to_iob2
from promptlab.errors import UserError

DOCSTART = "-DOCSTART-"
JSONL_EXAMPLE = '{"tokens": ["Japan", "won"], "tags": ["B-LOC", "O"]}'


class _Sentence:
    def __init__(self, line: int, document: int):
        self.line, self.document = line, document  # the line of its first token
        self.tokens: list[str] = []
        self.tags: list[str] = []
        self.lines: list[int] = []  # the line of every token
        self.given_id = None  # JSONL rows may name their id


def load_task_sequences(spec: Any, *, base_dir: Path, task, where: str | Path | None = None) -> list[dict]:
    """The reader of entity tasks (promptlab.kinds): token sequences with IOB2 tags."""
    if isinstance(spec, Mapping):
        origin, sentences, scheme = *_read_hub(spec, base_dir=base_dir, where=where), "IOB2"
    elif isinstance(spec, str) and spec.startswith(SOURCE_PREFIX):
        path = source_split_path(spec, where=where)
        origin, sentences, scheme = str(path), _read_jsonl(path), "IOB2"  # sources are written in IOB2
    elif isinstance(spec, (str, Path)):
        path = Path(base_dir) / spec
        origin, scheme = str(path), task.scheme
        sentences = _read_jsonl(path) if path.suffix.lower() == ".jsonl" else read_conll(path)
    else:
        raise UserError(f"data must be a file path, 'source:NAME/SPLIT' or a dataset mapping, not {spec!r}",
                        where=where, fix="for example: data: {train: train.conll, test: test.conll}")
    if not sentences:
        raise UserError("no sentences in the data", where=origin,
                        fix="write one token and its tag per line, a blank line between sentences")
    return _examples(sentences, origin=origin, scheme=scheme, types=task.labels)


def read_conll(path: Path) -> list[_Sentence]:
    sentences: list[_Sentence] = []
    current: _Sentence | None = None
    document = 0
    for number, line in enumerate(read_text(path).split("\n"), start=1):
        columns = line.split()
        if not columns or columns[0] == DOCSTART:
            if columns and sentences:
                document += 1
            current = None
            continue
        if len(columns) == 1:
            raise UserError(f"this line has one column ('{columns[0]}'); a token needs its tag", where=path,
                            line=number, fix="write the token, then its tag in the last column "
                                             "(separated by a space or tab), e.g.  Japan B-LOC")
        if current is None:
            current = _Sentence(number, document)
            sentences.append(current)
        current.tokens.append(columns[0])
        current.tags.append(columns[-1])
        current.lines.append(number)
    return sentences


def _read_jsonl(path: Path) -> list[_Sentence]:
    return [_json_sentence(value, path, number) for value, number in read_jsonl(path, example=JSONL_EXAMPLE)]


def _json_sentence(value: Any, path: Path | str, number: int | None) -> _Sentence:
    if not isinstance(value, dict) or not isinstance(value.get("tokens"), list):
        raise UserError("this line is not an object with a 'tokens' list", where=path, line=number,
                        fix=f"each line must be one JSON object, e.g. {JSONL_EXAMPLE}")
    tokens, tags = value["tokens"], value.get("tags")
    if not tokens or not all(isinstance(token, str) and token.strip() for token in tokens):
        raise UserError("'tokens' must be a non-empty list of non-empty strings", where=path, line=number,
                        fix=f"for example {JSONL_EXAMPLE}")
    if tags is not None and (not isinstance(tags, list) or len(tags) != len(tokens)
                             or not all(isinstance(tag, str) for tag in tags)):
        raise UserError(f"'tags' must be a list of {len(tokens)} strings, one per token", where=path, line=number,
                        fix=f"for example {JSONL_EXAMPLE}")
    sentence = _Sentence(number, int(value.get("document", 0)))
    sentence.tokens, sentence.tags = list(tokens), list(tags) if tags is not None else []
    sentence.lines = [number] * len(tokens)
    sentence.given_id = value.get("id")
    return sentence


def _read_hub(spec: Mapping, *, base_dir: Path, where) -> tuple[str, list[_Sentence]]:
    """A hub data set whose rows hold `tokens` and `tags` (after `columns:` renames); ClassLabel tags become names,
    e.g. {dataset: conll2003, split: test, columns: {ner_tags: tags}}."""
    check_hub_spec(spec, where=where)
    name, config, split = spec["dataset"], spec.get("config"), spec["split"]
    origin = f"dataset '{name}'" + (f" config '{config}'" if config else "") + f" split '{split}'"
    dataset = load_hub_split(name, config, split, resolve_data_files(spec.get("data_files"), base_dir),
                             origin=origin, where=where)
    renamed = {column: column for column in dataset.column_names} | dict(spec.get("columns") or {})
    column_of = {target: column for column, target in renamed.items()}
    feature = dataset.features.get(column_of.get("tags", "tags"))
    names = getattr(getattr(feature, "feature", None), "names", None)  # Sequence(ClassLabel)
    sentences = []
    for record in dataset:
        fields = {renamed[column]: value for column, value in record.items()}
        if names is not None and fields.get("tags") is not None:
            fields["tags"] = [names[index] for index in fields["tags"]]
        sentences.append(_json_sentence(fields, origin, None))
        sentences[-1].line = None
    return origin, sentences


def _examples(sentences: list[_Sentence], *, origin: str, scheme: str, types: list[str]) -> list[dict]:
    examples, repaired, seen = [], [], {}
    for row, sentence in enumerate(sentences):
        tags = None
        if sentence.tags:
            try:
                tags, fixed = to_iob2(sentence.tags, scheme, types)
            except TagError as error:
                raise UserError(error.message, where=origin, line=sentence.lines[error.position],
                                fix=error.fix) from None
            repaired += [sentence.lines[position] for position in fixed]
        given = sentence.given_id
        example_id = str(row) if given is None or given == "" else str(given)
        if example_id in seen:
            raise UserError(f"sentence id {example_id} appears twice", where=origin, line=sentence.line,
                            fix="give every sentence its own id")
        seen[example_id] = row
        examples.append(Example({"id": example_id, "tokens": sentence.tokens, "tags": tags,
                                 "document": sentence.document}, origin=origin, line=sentence.line, row=row))
    if repaired:
        where = f"line {repaired[0]}" if repaired[0] else "its first sentence"
        print(f"promptlab: {origin}: {len(repaired)} I- tag(s) began an entity and were read as B- "
              f"(first at {where}); {scheme} starts every entity with B-", file=sys.stderr)
    return examples
