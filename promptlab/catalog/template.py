"""Jinja2 templates with one answer slot, rendered in a sandbox.

A template file is plain Jinja2 text; `{{ mask }}` marks the answer slot exactly once and every
other variable is a field of the example. Optional metadata is a YAML mapping inside a leading
Jinja comment:

    {#
    description: Movie review, "It was ___."
    domain: "It was"
    #}
    {{ text }} It was {{ mask }}.

A leading comment whose text starts with a lowercase `key:` is metadata (unknown keys are
errors); any other comment is just a comment. The block and the newline after it render to
nothing, so metadata never leaks into the prompt. Rendering is strict
(undefined variables are errors) and strips nothing: whitespace comes from the template only,
including a trailing newline.
"""
from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import jinja2.meta
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from promptlab.errors import UserError, did_you_mean

MASK = "mask"
GOLD = "label"  # every example's gold label: a template that read it would leak the answer
MAX_RENDERED_CHARS = 1_000_000  # far above any prompt a model reads; stops runaway templates ('x' * 10**9)
_SLOT = "\x00PROMPTLAB-SLOT\x00"  # cannot occur in decoded text fields
_METADATA = re.compile(r"\A\{#(.*?)#\}\n?", re.DOTALL)
_TRAILING_SPACE = re.compile(r"\s*\Z")
METADATA_KEYS = ("description", "domain", "reference")

class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, where `*` and `**` cannot build huge values either ('x' * 10**9)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator, left, right):
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and isinstance(times, int) \
                        and len(sequence) * times > MAX_RENDERED_CHARS:
                    raise SecurityError(f"a value of {len(sequence) * times:,} items is too long")
        if operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1 \
                and right * abs(left).bit_length() > _MAX_POWER_BITS:
            raise SecurityError(f"{left} ** {right} is too large")
        return super().call_binop(context, operator, left, right)


_MAX_POWER_BITS = 4096
_ENVIRONMENT = _Sandbox(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
_SENTENCE_ENDS = "。！？；!?;\n"


def truncate_chars(text: str, length: int = 200, end: str = "…") -> str:
    """`{{ content | truncate_chars(200) }}`: at most `length` characters of a text, then `end` if any were cut.

    Jinja's `truncate` cuts at spaces, which Chinese and Japanese text lacks; this counts characters,
    and ends at the last sentence end (。！？；) of the final quarter when there is one.
    """
    text = str(text)
    if len(text) <= length:
        return text
    kept = text[:length]
    stop = max(kept.rfind(mark) for mark in _SENTENCE_ENDS)
    return (kept[:stop + 1] if stop >= length * 3 // 4 else kept) + end


_ENVIRONMENT.filters["truncate_chars"] = truncate_chars


def split_trailing_space(text: str) -> tuple[str, str]:
    """('It was ', ) -> ('It was', ' '): the space belongs to the answer's first token."""
    space = _TRAILING_SPACE.search(text).group(0)
    return text[: len(text) - len(space)], space


@dataclass(frozen=True)
class Prompt:
    """A rendered example: the text before and after the answer slot."""

    before: str
    after: str

    def text(self, answer: str) -> str:
        return self.before + answer + self.after


@dataclass(frozen=True)
class Template:
    name: str
    task: str
    path: Path
    source: str  # the file's text
    body: str  # what Jinja renders: the source with the metadata comment and its newline blanked
    fields: frozenset[str]
    metadata: dict = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()[:16]

    @property
    def description(self) -> str:
        return self.metadata.get("description", "")

    def render(self, example: dict, *, where: str = "") -> Prompt:
        """Render one example and split it at the answer slot."""
        if MASK in example:
            raise UserError(f"example {example.get('id', '?')}{where} has a field named '{MASK}', the name of the "
                            "answer slot, so templates could not read it", where=self.path,
                            fix=f"rename the '{MASK}' column in the data")
        missing = sorted(name for name in self.fields if name not in example)
        if missing:
            raise UserError(
                f"example {example.get('id', '?')}{where} has no field {', '.join(map(repr, missing))} "
                f"that the template uses; fields present: {', '.join(sorted(map(str, example)))}",
                where=self.path, fix="rename the variable in the template or the column in the data")
        marked = next((name for name, value in example.items() if isinstance(value, str) and _SLOT in value), None)
        if marked is not None:
            raise UserError(f"example {example.get('id', '?')}{where}: field {marked!r} holds the reserved sequence "
                            "that marks the answer slot", where=self.path,
                            fix="remove NUL characters (\\x00) from the text")
        try:
            text = _render_capped(_compile(self.body), {**example, MASK: _SLOT})
        except SecurityError as error:
            raise UserError(f"template tries an unsafe operation: {error}", where=self.path,
                            fix="templates may only read fields of the example") from None
        except jinja2.UndefinedError as error:
            raise UserError(f"rendering failed: {error.message}", where=self.path,
                            line=_error_line(error), fix="check the variable names against the data") from None
        except jinja2.TemplateError as error:
            raise UserError(f"rendering failed: {error}", where=self.path, line=_error_line(error)) from None
        if text is None:
            raise UserError(f"the template renders more than {MAX_RENDERED_CHARS:,} characters for example "
                            f"{example.get('id', '?')}", where=self.path,
                            fix="shorten long fields with a filter, e.g. {{ text | truncate(2000) }}")
        pieces = text.split(_SLOT)
        if len(pieces) != 2:
            raise UserError(f"the answer slot rendered {len(pieces) - 1} times for example "
                            f"{example.get('id', '?')}", where=self.path,
                            fix="render {{ mask }} exactly once, outside loops and conditions")
        return Prompt(*pieces)

    def fields_in_order(self) -> list[str]:
        """The fields in the order the template first reads them."""
        names = [value for _, kind, value in _ENVIRONMENT.lex(self.body) if kind == "name" and value in self.fields]
        return list(dict.fromkeys(names))

    def content_free(self, filler: str) -> Prompt:
        """The prompt with every field replaced by `filler` (contextual calibration)."""
        return self.render({name: filler for name in self.fields})

    def domain_prompt(self) -> Prompt:
        """The domain-only prompt of PMI_DC: metadata `domain`, else all fields empty.

        The domain text ends with the whitespace that the template puts before the slot, so the
        label words are scored exactly as in the full prompt (' great', not 'great').
        """
        if "domain" in self.metadata:
            return Prompt(split_trailing_space(self.metadata["domain"])[0] + self.slot_space, "")
        return self.content_free("")

    @property
    def slot_space(self) -> str:
        """The whitespace right before the answer slot, as the template writes it."""
        # Filled with visible text, so a field next to the slot cannot lend or hide whitespace.
        return split_trailing_space(self.content_free("N/A").before)[1]


@functools.lru_cache(maxsize=256)
def _compile(source: str) -> jinja2.Template:
    return _ENVIRONMENT.from_string(source)


def _render_capped(template: jinja2.Template, context: dict) -> str | None:
    """The rendered text, or None once it passes MAX_RENDERED_CHARS (rendering stops there)."""
    pieces, size = [], 0
    for piece in template.generate(context):
        size += len(piece)
        if size > MAX_RENDERED_CHARS:
            return None
        pieces.append(piece)
    return "".join(pieces)


def _error_line(error: Exception) -> int | None:
    return getattr(error, "lineno", None)


def parse_template(source: str, *, name: str, task: str, path: Path) -> Template:
    """Parse and statically check a template; every mistake is a UserError with a line."""
    metadata = _parse_metadata(source, path)
    # Blank the metadata block and the newline after it, keeping line numbers for error messages.
    body = _METADATA.sub(lambda match: "{#" + "\n" * match.group(0).count("\n") + "#}", source, count=1) \
        if metadata else source
    try:
        tree = _ENVIRONMENT.parse(body)
    except jinja2.TemplateSyntaxError as error:
        raise UserError(f"template syntax error: {error.message}", where=path, line=error.lineno,
                        fix="check that every {{ }} and {% %} is closed and spelled correctly") from None
    variables = jinja2.meta.find_undeclared_variables(tree)
    mask_count = sum(1 for node in tree.find_all(jinja2.nodes.Name) if node.name == MASK and node.ctx == "load")
    if mask_count != 1:
        problem = "has no answer slot" if mask_count == 0 else f"uses {{{{ mask }}}} {mask_count} times"
        raise UserError(f"template {problem}", where=path,
                        fix="write {{ mask }} exactly once where the label word goes")
    _reject_unsafe_names(tree, path)
    _reject_gold_label(tree, path)
    return Template(name=name, task=task, path=path, source=source, body=body,
                    fields=frozenset(variables - {MASK}), metadata=metadata)


def _reject_unsafe_names(tree: jinja2.nodes.Template, path: Path) -> None:
    # The sandbox blocks these at render time too; catching them here reports them before any model loads.
    for node in tree.find_all((jinja2.nodes.Getattr, jinja2.nodes.Getitem)):
        attribute = getattr(node, "attr", None) or getattr(getattr(node, "arg", None), "value", None)
        if isinstance(attribute, str) and attribute.startswith("_"):
            raise UserError(f"template reads the private attribute '{attribute}'", where=path, line=node.lineno,
                            fix="templates may only read fields of the example")


def _reject_gold_label(tree: jinja2.nodes.Template, path: Path) -> None:
    for node in tree.find_all(jinja2.nodes.Name):
        if node.name == GOLD and node.ctx == "load":
            raise UserError(f"template reads '{GOLD}', the gold answer: every prompt would contain it",
                            where=path, line=node.lineno, fix="use only the example's input fields")


def _parse_metadata(source: str, path: Path) -> dict:
    """YAML metadata in a leading comment whose text starts with a lowercase `key:`."""
    match = _METADATA.match(source)
    body = match.group(1).strip() if match else ""
    if not re.match(r"[a-z_]+:", body):
        return {}  # an ordinary leading comment, not metadata
    try:
        data = yaml.safe_load(body)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise UserError(f"invalid metadata YAML: {getattr(error, 'problem', error)}", where=path,
                        line=mark.line + 1 + _leading_lines(match.group(1)) if mark else 1,
                        fix='quote values that contain ": " or "#"') from None
    if not isinstance(data, dict):
        raise UserError("template metadata must be a mapping of keys to text", where=path, line=1)
    for key, value in data.items():
        if key not in METADATA_KEYS:
            raise UserError(f"unknown template metadata key '{key}'", where=path, line=1 + _key_line(body, key),
                            fix=did_you_mean(str(key), METADATA_KEYS))
        if not isinstance(value, str):
            raise UserError(f"template metadata '{key}' must be text, got {value!r}", where=path,
                            line=1 + _key_line(body, key), fix=f'quote it: {key}: "{value}"')
    return data


def _leading_lines(comment: str) -> int:
    return len(comment) - len(comment.lstrip("\n")) if comment.startswith("\n") else 0


def _key_line(body: str, key: str) -> int:
    for number, line in enumerate(body.splitlines(), start=1):
        if line.startswith(f"{key}:"):
            return number
    return 0


def load_template(path: Path, *, task: str) -> Template:
    try:
        source = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"not valid UTF-8 (byte {error.start})", where=path, fix="save the file as UTF-8") from None
    except OSError as error:
        raise UserError(f"cannot read template: {error.strerror}", where=path) from None
    return parse_template(source, name=path.stem, task=task, path=path)
