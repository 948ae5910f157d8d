"""Task kinds: the one place that decides which reader, methods and commands serve a task.

    kind: classification   (the default) one label per text
    kind: entities         entity spans over token sequences (named-entity recognition)

Everything kind-specific is named here as "module:function" and imported on use, so the CLI stays
fast and no other module needs to ask what kind of task it holds.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from promptlab.errors import UserError, did_you_mean


@dataclass(frozen=True)
class TaskKind:
    name: str
    description: str
    reader: str  # loads a split: (spec, *, base_dir, task, where) -> examples
    prompt_inputs: str  # examples -> what one prompt renders (an example; an entity task's candidate spans)
    commands: dict[str, str]  # CLI command -> function taking the command's options
    methods: tuple[str, ...]  # `fewshot --method` choices
    default_method: str
    min_labels: int
    # verbalizer labels beyond the task's own: what a prompt may answer besides a label
    extra_answers: tuple[str, ...] = ()

    def function(self, target: str) -> Callable:
        module, _, name = target.partition(":")
        return getattr(importlib.import_module(module), name)


NOT_AN_ENTITY = "O"  # the verbalizer label of a candidate span that is no entity (the tag of outside tokens)

KINDS: dict[str, TaskKind] = {kind.name: kind for kind in (
    TaskKind(name="classification", description="one label per text",
             reader="promptlab.data:load_task_examples", prompt_inputs="promptlab.kinds:as_is",
             commands={"zeroshot": "promptlab.commands.zeroshot:run_zeroshot_command",
                       "fewshot": "promptlab.commands.fewshot:run_fewshot_command",
                       "predict": "promptlab.commands.predict:run_predict_command"},
             methods=("softprompt", "finetune", "lora", "finetune-head", "icl", "head", "setfit", "majority"),
             default_method="softprompt", min_labels=2),
    TaskKind(name="entities", description="entity spans in token sequences (named-entity recognition)",
             reader="promptlab.entities.readers:load_task_sequences",
             prompt_inputs="promptlab.entities.prompting:candidate_inputs",
             commands={"zeroshot": "promptlab.entities.commands:run_zeroshot_command",
                       "fewshot": "promptlab.entities.commands:run_fewshot_command",
                       "predict": "promptlab.entities.predict:run_predict_command"},
             methods=("token-finetune", "entity-prompt"), default_method="token-finetune", min_labels=1,
             extra_answers=(NOT_AN_ENTITY,)),
)}
DEFAULT_KIND = "classification"
ALL_METHODS = tuple(method for kind in KINDS.values() for method in kind.methods)


def as_is(examples: list[dict]) -> list[dict]:
    return examples


def task_kind(name: str, *, where=None, line: int | None = None) -> TaskKind:
    if name not in KINDS:
        raise UserError(f"unknown task kind '{name}'", where=where, line=line, fix=did_you_mean(name, KINDS))
    return KINDS[name]


def run_command(command: str, options: dict) -> None:
    """Run a CLI command the way the task's kind does it; `fewshot --method` is checked against the kind."""
    from promptlab.catalog import Catalog

    if options["task"] is None:  # the task comes from a trained artefact: only text tasks do that yet
        KINDS[DEFAULT_KIND].function(KINDS[DEFAULT_KIND].commands[command])(**options)
        return
    task = Catalog.from_options(options["catalogs"]).task(options["task"])
    kind = task_kind(task.kind)
    if "method" in options:
        options["method"] = options["method"] or kind.default_method
        if options["method"] not in kind.methods:
            raise UserError(f"method '{options['method']}' does not apply to task '{task.name}' "
                            f"(kind {kind.name}: {kind.description})", where=task.path,
                            fix="use --method " + "|".join(kind.methods))
    kind.function(kind.commands[command])(**options)
