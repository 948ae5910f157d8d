"""The tokenizer-aware checks of `templates check` (promptlab.catalog.lint): label words as a model reads them.

Words of several tokens, words that merge with the text before the slot or lose their leading space,
and labels whose words share a first token, checked with --model's tokenizer, else the default model's
(skipped with a note when it cannot be loaded).
"""
from __future__ import annotations

from typing import Callable

from promptlab.backends.aliases import DEFAULT_MODEL
from promptlab.catalog.lint import Problem
from promptlab.catalog.template import Template
from promptlab.catalog.verbalizer import Verbalizer
from promptlab.data.words import is_cjk
from promptlab.errors import UserError


def word_checks(model: str | None, problems: list[Problem], *, default: str | None = None
                ) -> Callable[[Template, Verbalizer], list[Problem]] | None:
    """The checks of a template with a verbalizer on `model`'s tokenizer, else on `default`'s (a task's own
    model), else the default model's; None (with a note in `problems`) when a default's cannot be loaded."""
    tokenizer = _tokenizer(model or default or DEFAULT_MODEL, required=model is not None, problems=problems)
    if tokenizer is None:
        return None
    return lambda template, verbalizer: _token_checks(template, verbalizer, tokenizer)


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
            # Chinese and Japanese are written without spaces: a word right after the text is how they read
            unspaced = is_cjk(word[:1])
            if reader.merges_at_slot(prompt, word):
                fix = "end the text before {{ mask }} with punctuation such as '：'" if unspaced \
                    else "put a space before {{ mask }}"
                problems.append(Problem("warning", where, f"'{word}' merges with the text before the slot into "
                                                          f"shared tokens, so it is scored as if written alone; {fix}"))
            elif not unspaced and not prompt.before[-1:].isspace() and not word[:1].isspace() and prompt.before and \
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
