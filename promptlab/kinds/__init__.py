"""Task kinds: the one place that decides which reader, methods and commands serve a task.

    kind: classification   (the default) one label per text
    kind: entities         entity spans over token sequences (named-entity recognition)

Everything kind-specific is named here as "module:function" and imported on use, so the CLI stays
fast and no other module needs to ask what kind of task it holds.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
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
    method_options: str  # (method, options dict) -> its checked options: a suite's methods are checked with it
    # promptlab eval (promptlab.evaluation.runner): a suite's units on tasks of this kind
    suite_data: str  # (setup, task entry, *, where) -> runner.TaskData: the test sample and train pool, checked
    run_unit: str  # (config, setup, data, model: runner.SharedModel, *, batch_size) -> the unit's row fields
    metrics: tuple[str, ...]  # what a unit records; the first is its score (plotted, in progress lines)
    k_unit: str  # what a k counts
    # verbalizer labels beyond the task's own: what a prompt may answer besides a label
    extra_answers: tuple[str, ...] = ()
    # methods that load their model themselves rather than score through the suite's shared language model:
    # method -> "module:function" (model name, device) -> the fingerprint of the weights the name loads now
    own_models: dict[str, str] = field(default_factory=dict)

    def function(self, target: str) -> Callable:
        module, _, name = target.partition(":")
        return getattr(importlib.import_module(module), name)


NOT_AN_ENTITY = "O"  # the verbalizer label of a candidate span that is no entity (the tag of outside tokens)

KINDS: dict[str, TaskKind] = {kind.name: kind for kind in (
    TaskKind(name="classification", description="one label per text",
             reader="promptlab.data.readers:load_task_examples", prompt_inputs="promptlab.kinds:as_is",
             commands={"zeroshot": "promptlab.commands.zeroshot:run_zeroshot_command",
                       "fewshot": "promptlab.commands.fewshot:run_fewshot_command",
                       "predict": "promptlab.commands.prediction:run_predict_command",
                       "serve": "promptlab.commands.serving:run_serve_command"},
             methods=("softprompt", "finetune", "lora", "finetune-head", "icl", "head", "setfit", "majority"),
             default_method="softprompt", min_labels=2, method_options="promptlab.methods:method_options",
             suite_data="promptlab.evaluation.units.text:load_suite_data", run_unit="promptlab.evaluation.units.text:run_unit",
             metrics=("accuracy", "macro_f1"), k_unit="training examples per class"),
    TaskKind(name="entities", description="entity spans in token sequences (named-entity recognition)",
             reader="promptlab.data.entity_readers:load_task_sequences",
             prompt_inputs="promptlab.methods.entity_candidates:candidate_inputs",
             commands={"zeroshot": "promptlab.kinds.entities:run_zeroshot_command",
                       "fewshot": "promptlab.kinds.entities:run_fewshot_command",
                       "predict": "promptlab.apply.entity_predict:run_predict_command",
                       "serve": "promptlab.apply.entity_serve:run_serve_command"},
             methods=("token-finetune", "entity-prompt"), default_method="token-finetune", min_labels=1,
             method_options="promptlab.methods.entity_prompt:entity_method_options",
             suite_data="promptlab.evaluation.units.entities:load_suite_data",
             run_unit="promptlab.evaluation.units.entities:run_unit",
             metrics=("f1", "precision", "recall"), k_unit="mentions per entity type",
             extra_answers=(NOT_AN_ENTITY,),
             own_models={"token-finetune": "promptlab.methods.token_finetune:model_fingerprint"}),
)}
DEFAULT_KIND = "classification"
ALL_METHODS = tuple(method for kind in KINDS.values() for method in kind.methods)


def as_is(examples: list[dict]) -> list[dict]:
    return examples


def task_kind(name: str, *, where=None, line: int | None = None) -> TaskKind:
    if name not in KINDS:
        raise UserError(f"unknown task kind '{name}'", where=where, line=line, fix=did_you_mean(name, KINDS))
    return KINDS[name]


def method_kind(method: str) -> TaskKind:
    """The kind whose tasks a (few-shot) method runs on."""
    return next(kind for kind in KINDS.values() if method in kind.methods)


def run_command(command: str, options: dict) -> None:
    """Run a CLI command the way the task's kind does it; `fewshot --method` is checked against the kind.

    Without --task the task is the one a --trained artefact names (its trained.json); with neither,
    the text command says what is missing.
    """
    from promptlab.catalog.catalog import Catalog

    name = options["task"] or _trained_task(options.get("trained") or options.get("prompt"))
    if name is None:
        KINDS[DEFAULT_KIND].function(KINDS[DEFAULT_KIND].commands[command])(**options)
        return
    task = Catalog.from_options(options["catalogs"]).task(name)
    kind = task_kind(task.kind)
    if "method" in options:
        options["method"] = options["method"] or kind.default_method
        if options["method"] not in kind.methods:
            raise UserError(f"method '{options['method']}' does not apply to task '{task.name}' "
                            f"(kind {kind.name}: {kind.description})", where=task.path,
                            fix="use --method " + "|".join(kind.methods))
    kind.function(kind.commands[command])(**options)


def _trained_task(folder: str | None) -> str | None:
    if folder is None:
        return None
    from promptlab.methods.artefacts import load_trained
    return load_trained(folder).metadata.get("task")
