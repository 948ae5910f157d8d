"""`promptlab templates check`: lint every template, verbalizer and answer file of a catalog.

Every file parses, verbalizers match their task, and templates only use fields that the task's
local data has. Then tokenizer-aware checks with --model, else the default model (skipped with a
note when it cannot be loaded): words of several tokens, words that lose their leading space, and
labels whose words share a first token.
"""
from __future__ import annotations

from dataclasses import dataclass

from promptlab.backends.aliases import DEFAULT_MODEL
from promptlab.catalog.catalog import Catalog
from promptlab.errors import UserError

SEVERITIES = ("error", "warning", "note")  # counted under the names they are printed with


@dataclass(frozen=True)
class Problem:
    severity: str  # one of SEVERITIES
    where: str
    message: str

    def format(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


def _problem(severity: str, error: UserError) -> Problem:
    where = f"{error.where}:{error.line}" if error.line else str(error.where or "")
    return Problem(severity, where, error.what + (f" ({error.fix})" if error.fix else ""))


def lint_catalog(catalog: Catalog, *, task: str | None = None, model: str | None = None) -> list[Problem]:
    """Every problem found; the tokenizer checks use `model`, else the default model when it can be loaded."""
    problems: list[Problem] = []
    tokenizer = _tokenizer(model or DEFAULT_MODEL, required=model is not None, problems=problems)
    for name in [task] if task else catalog.task_names():
        try:
            loaded_task = catalog.task(name)
        except UserError as error:
            problems.append(_problem("error", error))
            continue
        fields = _data_fields(loaded_task)
        templates, verbalizers = [], []
        for template_name in catalog.template_files(name):
            try:
                templates.append(catalog.template(name, template_name))
            except UserError as error:
                problems.append(_problem("error", error))
        for verbalizer_name in catalog.verbalizer_files(name):
            try:
                verbalizers.append(catalog.verbalizer(loaded_task, verbalizer_name))
            except UserError as error:
                problems.append(_problem("error", error))
        problems += _answer_problems(catalog, loaded_task)
        if not templates:
            problems.append(Problem("warning", str(loaded_task.path), f"task '{name}' has no templates"))
        for template in templates:
            missing = sorted(template.fields - fields) if fields is not None else []
            if missing:
                problems.append(Problem("error", str(template.path),
                                        f"uses field(s) {', '.join(missing)} that the task's data lacks "
                                        f"(it has: {', '.join(sorted(fields))})"))
            if tokenizer is not None:
                problems += [check for verbalizer in verbalizers
                             for check in _token_checks(template, verbalizer, tokenizer)]
    return problems


def _answer_problems(catalog: Catalog, task) -> list[Problem]:
    """Answer files load (labels, syntax, declared variables), and every label is answered or listed."""
    problems = []
    for name in catalog.answer_files(task.name):
        try:
            answers = catalog.answers(task, name)
        except UserError as error:
            problems.append(_problem("error", error))
            continue
        unlisted = answers.unlisted(task.labels)
        if unlisted:
            problems.append(Problem("warning", str(answers.path),
                                    f"{len(unlisted)} label(s) have no answer and are not listed under handoff or "
                                    f"retrieve, so they are answered from the knowledge base: {', '.join(unlisted)}"))
    return problems


def _data_fields(task) -> set[str] | None:
    """Fields of the first example of the task's first local data file, or None if none is local."""
    for spec in task.data.values():
        if isinstance(spec, str) and not spec.startswith("source:"):
            try:
                return set(task.examples(next(s for s, v in task.data.items() if v == spec), limit=1)[0])
            except UserError:
                return None
    return None


def _tokenizer(model: str, *, required: bool, problems: list[Problem]):
    """The model's tokenizer; the default model's missing is a note (checks skipped), a named one's an error."""
    from transformers import AutoTokenizer

    from promptlab.backends.models import resolve_model
    try:
        source, _ = resolve_model(model)
        return AutoTokenizer.from_pretrained(source)
    except (UserError, OSError, ValueError) as error:
        if required:
            raise
        what = error.what if isinstance(error, UserError) else str(error).splitlines()[0]
        problems.append(Problem("note", model, f"tokenizer checks skipped: {what} (pass --model to choose one)"))
        return None


def _token_checks(template, verbalizer, tokenizer) -> list[Problem]:
    from promptlab.backends.inputs import PromptTokens
    from promptlab.catalog.template import Prompt

    prompt = template.content_free("x")
    spaced = Prompt(prompt.before + " ", prompt.after)
    reader = PromptTokens(tokenizer)  # reads the label words exactly as the backends do
    where = f"{template.path} + {verbalizer.path}"
    problems, first_tokens = [], {}
    for label, words in verbalizer.words.items():
        for word in words:
            tokens = reader.word_tokens(prompt, word)
            if len(tokens) > 1:
                problems.append(Problem("note", where, f"'{word}' ({label}) is {len(tokens)} tokens: "
                                                       f"{tokenizer.convert_ids_to_tokens(tokens)}; scored exactly"))
            if reader.merges_at_slot(prompt, word):
                problems.append(Problem("warning", where, f"'{word}' merges with the text before the slot into "
                                                          "shared tokens, so it is scored as if written alone; "
                                                          "put a space before {{ mask }}"))
            elif not prompt.before[-1:].isspace() and not word[:1].isspace() and prompt.before and \
                    tokens != reader.word_tokens(spaced, word):
                problems.append(Problem("warning", where, f"'{word}' follows the text with no space, so it is "
                                                          "tokenized as a word piece; put a space before {{ mask }}"))
            other = first_tokens.get(tokens[0])
            if other and other[0] != label:
                problems.append(Problem("warning", where, f"'{word}' ({label}) and '{other[1]}' ({other[0]}) start "
                                                          f"with the same token {tokenizer.convert_ids_to_tokens(tokens[:1])}; "
                                                          "the first token cannot tell them apart"))
            first_tokens.setdefault(tokens[0], (label, word))
    return problems
