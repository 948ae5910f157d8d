"""Answer files: what the assistant says for each intent of a task (`answers/<task>/<name>.yaml`).

    description: Replies of the support desk
    variables: [name]             # request fields the answers may read besides `text`
    answers:
      card_arrival: "Hi {{ name | default('there') }}, cards arrive within 5 working days."
    handoff: [lost_or_stolen_card]    # always handed to a person
    retrieve: [exchange_rate]         # answered from the knowledge base even when the intent is known

An answer is a Jinja template rendered in the same sandbox as prompt templates, with strict
undefined variables: a request that lacks a field an answer reads gets an error naming it, never a
half-rendered answer (`{{ name | default('there') }}` makes a field optional). A label in none of
the three lists is answered from the knowledge base too; `templates check` warns about it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import jinja2
import jinja2.meta
from jinja2.sandbox import SecurityError

from promptlab.catalog.template import _ENVIRONMENT, _compile, _render_capped
from promptlab.catalog.yamlfile import Mapping, Sequence, check_keys, load_yaml
from promptlab.errors import UserError, did_you_mean

TEXT_FIELD = "text"  # every message has it
KEYS = ("description", "variables", "answers", "handoff", "retrieve")
PATHS = ("template", "retrieval", "handoff")  # what the assistant does with a message


@dataclass(frozen=True)
class Answer:
    label: str
    source: str
    line: int  # the line of its key in the file
    fields: frozenset[str]


@dataclass(frozen=True)
class Answers:
    name: str
    task: str
    path: Path
    answers: dict[str, Answer]
    handoff: tuple[str, ...]
    retrieve: tuple[str, ...]
    variables: tuple[str, ...]
    description: str = ""

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]

    def path_for(self, label: str) -> str:
        """What a confident intent gets: its template, a person, or the knowledge base."""
        if label in self.handoff:
            return "handoff"
        return "template" if label in self.answers else "retrieval"

    def unlisted(self, labels: list[str]) -> list[str]:
        """Labels with no answer that are not listed either (answered by retrieval, perhaps by oversight)."""
        return [label for label in labels if label not in self.answers and label not in self.handoff
                and label not in self.retrieve]

    def render(self, label: str, row: dict, *, where: str = "") -> str:
        """The answer for `label` with the request's fields; a missing field is a UserError naming it."""
        answer = self.answers[label]
        try:
            text = _render_capped(_compile(answer.source), row)
        except SecurityError as error:
            raise UserError(f"the answer for '{label}' tries an unsafe operation: {error}", where=self.path,
                            line=answer.line) from None
        except jinja2.UndefinedError as error:  # StrictUndefined: "'name' is undefined"
            raise UserError(f"message{where} lacks a field that the answer for '{label}' reads: {error.message}",
                            where=self.path, line=answer.line,
                            fix="send the field with the message, or give it a default in the answer: "
                                "{{ name | default('...') }}") from None
        if text is None:
            raise UserError(f"the answer for '{label}' renders too long a text", where=self.path, line=answer.line)
        return text


def load_answers(path: Path, *, task: str, labels: list[str]) -> Answers:
    """Load and check an answer file against its task's labels; every mistake is a UserError with a line."""
    data = load_yaml(path)
    check_keys(data, KEYS, where=path)
    variables = _names(data, "variables", path, allowed=None)
    answers_map = data.get("answers", Mapping())
    if not isinstance(answers_map, Mapping):
        raise UserError("'answers' must map labels to answer texts", where=path, line=data.line_of("answers"),
                        fix='write e.g.  answers: {card_arrival: "Cards arrive within 5 working days."}')
    known_fields = {TEXT_FIELD, *variables}
    answers = {}
    for label, source in answers_map.items():
        line = answers_map.line_of(label)
        _check_label(label, labels, task, path, line)
        if not isinstance(source, str) or not source.strip():
            raise UserError(f"the answer for '{label}' must be a non-empty text", where=path, line=line)
        try:
            tree = _ENVIRONMENT.parse(source)
        except jinja2.TemplateSyntaxError as error:
            raise UserError(f"answer for '{label}': template syntax error: {error.message}", where=path,
                            line=line + (error.lineno or 1) - 1, fix="check that every {{ }} and {% %} is closed") \
                from None
        fields = frozenset(jinja2.meta.find_undeclared_variables(tree))
        unknown_fields = sorted(fields - known_fields)
        if unknown_fields:
            raise UserError(f"the answer for '{label}' reads {', '.join(map(repr, unknown_fields))}, which is "
                            f"neither '{TEXT_FIELD}' nor a declared variable", where=path, line=line,
                            fix=f"add it to  variables: [...]  (now: {', '.join(variables) or 'none'}), or fix "
                                "the name" + _closest(unknown_fields[0], known_fields))
        answers[label] = Answer(str(label), source, line, fields)
    handoff = _names(data, "handoff", path, allowed=labels, task=task)
    retrieve = _names(data, "retrieve", path, allowed=labels, task=task)
    for name, listed in (("handoff", handoff), ("retrieve", retrieve)):
        for label in listed:
            if label in answers:
                raise UserError(f"'{label}' has an answer and is listed under '{name}' too", where=path,
                                line=data[name].item_lines[list(data[name]).index(label)],
                                fix="keep it in one place: an answer, handoff or retrieve")
    both = sorted(set(handoff) & set(retrieve))
    if both:
        raise UserError(f"'{both[0]}' is listed under both 'handoff' and 'retrieve'", where=path,
                        line=data.line_of("retrieve"), fix="keep it in one list")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise UserError("'description' must be text", where=path, line=data.line_of("description"))
    return Answers(path.stem, task, path, answers, handoff, retrieve, variables, description)


def _names(data: Mapping, key: str, path: Path, *, allowed: list[str] | None, task: str = "") -> tuple[str, ...]:
    if key not in data:
        return ()
    value = data[key]
    if not isinstance(value, Sequence) or not all(isinstance(item, str) for item in value):
        raise UserError(f"'{key}' must be a list of names", where=path, line=data.line_of(key),
                        fix=f"write e.g.  {key}: [first, second]")
    for item, line in zip(value, value.item_lines):
        if allowed is not None:
            _check_label(item, allowed, task, path, line)
        if list(value).count(item) > 1:
            raise UserError(f"'{item}' is listed twice under '{key}'", where=path, line=line, fix="list it once")
    return tuple(value)


def _check_label(label, labels: list[str], task: str, path: Path, line: int) -> None:
    if label not in labels:
        raise UserError(f"'{label}' is not a label of task '{task}'", where=path, line=line,
                        fix=did_you_mean(str(label), labels))


def _closest(name: str, choices) -> str:
    hint = did_you_mean(name, choices)
    return f" ({hint})" if hint.startswith("did you mean") else ""
