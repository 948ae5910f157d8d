"""A method's options as `fewshot --method M --help-method` shows them: name, default, what it does.

What an option does is the comment on its field in the method's options dataclass (trailing, or the
comment lines right above it), read from the source so the one place that defines an option also
documents it; the options every trained method shares are described here once.
"""
from __future__ import annotations

import dataclasses
import inspect
import re

SHARED = {
    "steps": "optimizer steps",
    "lr": "learning rate",
    "batch_size": "training examples per optimizer step (fewshot --train-batch-size)",
    "weight_decay": "AdamW's weight decay",
    "prompt_length": "soft prompt vectors (fewshot --prompt-length)",
    "init": "how the soft prompt starts: vocab | text | labels",
    "aggregate": "how the words of one label combine: logsumexp | mean | max",
    "rank": "LoRA rank",
    "alpha": "LoRA scaling (alpha / rank multiplies the adapters' update)",
    "encoder": "the sentence encoder: an alias, a local folder or a hub id (fewshot --encoder)",
}
_FIELD = re.compile(r"^\s+(\w+)\s*:[^#]*?(?:#\s*(.*))?$")


def option_rows(options: type) -> list[tuple[str, str, str]]:
    """(name, default, description) of every field of an options dataclass, in declaration order."""
    defaults = dataclasses.asdict(options())
    described = {}
    for cls in reversed(inspect.getmro(options)[:-1]):  # a subclass's comment replaces its base's
        described.update(_comments(cls))
    return [(name, repr(value) if isinstance(value, str) else str(value), described.get(name) or SHARED.get(name, ""))
            for name, value in defaults.items()]


def _comments(cls: type) -> dict[str, str]:
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):  # no source to read (a frozen build): the shared descriptions remain
        return {}
    comments, above = {}, []
    for line in source.splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# "))
            continue
        match = _FIELD.match(line)
        if match and not stripped.startswith(("def ", "return", "@")):
            text = " ".join(above + ([match.group(2)] if match.group(2) else []))
            if text:
                comments[match.group(1)] = text
        above = []
    return comments
