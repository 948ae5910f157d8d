"""Continual suites: a sequence of tasks and the strategies that learn it, in one YAML file.

    description: Sentiment, then news topics, then voice-assistant intents
    model: smollm2-135m
    tasks:                          # learned in this order
      - sentiment                   # the task's default template (its `template:` key) and verbalizer
      - bbc: {template: t1, limit: 60}
      - snips
    k: 4                            # training (and dev) examples per class, per task
    seeds: [13]                     # each strategy learns the whole sequence once per seed
    limit: 60                       # test examples per task: a fixed stratified sample, as in `eval`
    strategies:                     # options of the few-shot method each strategy trains with
      - prompt-per-task: {steps: 12, batch_size: 8}
      - finetune-sequential: {lr: 5.0e-5}

Suites live beside evaluation suites (`eval_suites/<name>.yaml`) and are found the same way.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptlab.catalog.catalog import Catalog, Setup
from promptlab.continual.strategies import STRATEGIES, strategy_options
from promptlab.errors import UserError, did_you_mean
from promptlab.evaluation.suite import suite_path
from promptlab.catalog.yamlfile import Mapping, Sequence, check_keys, load_yaml

SUITE_KEYS = ("description", "model", "tasks", "k", "seeds", "limit", "strategies", "router_encoder")
TASK_KEYS = ("template", "verbalizer", "limit")


@dataclass(frozen=True)
class SequenceTask:
    setup: Setup
    limit: int | None

    @property
    def name(self) -> str:
        return self.setup.task.name

    def describe(self) -> dict:
        return {**self.setup.describe(), "limit": self.limit}


@dataclass(frozen=True)
class ContinualSuite:
    name: str
    path: Path
    description: str
    model: str
    tasks: tuple[SequenceTask, ...]
    k: int
    seeds: tuple[int, ...]
    strategies: dict[str, dict]  # name -> options, in the suite's order
    router_encoder: str | None = None  # the task router's features: a sentence encoder, else the suite's model


def load_continual_suite(name: str, catalog: Catalog) -> ContinualSuite:
    path = suite_path(name, catalog)
    data = load_yaml(path)
    check_keys(data, SUITE_KEYS, where=path, required=("model", "tasks", "k", "seeds", "strategies"))
    suite_limit = _whole(data, "limit", path, minimum=1) if "limit" in data else None
    tasks = _tasks(data, path, catalog, suite_limit)
    seeds = data["seeds"]
    if not isinstance(seeds, Sequence) or not seeds or not all(_is_int(seed) and seed >= 0 for seed in seeds) \
            or len(set(seeds)) != len(seeds):
        raise UserError("'seeds' must be a list of distinct whole numbers", where=path, line=data.line_of("seeds"),
                        fix="write e.g.  seeds: [13, 21, 42]")
    if not isinstance(data["model"], str) or not data["model"]:
        raise UserError("'model' must be a model name", where=path, line=data.line_of("model"),
                        fix="write e.g.  model: smollm2-135m")
    router_encoder = data.get("router_encoder")
    if router_encoder is not None and (not isinstance(router_encoder, str) or not router_encoder):
        raise UserError("'router_encoder' must be an encoder name", where=path, line=data.line_of("router_encoder"),
                        fix="write e.g.  router_encoder: mpnet-base  (or leave it out: the suite's model)")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise UserError("'description' must be text", where=path, line=data.line_of("description"), fix="quote it")
    return ContinualSuite(name=path.stem, path=path, description=description, model=data["model"], tasks=tasks,
                          k=_whole(data, "k", path, minimum=1), seeds=tuple(seeds), strategies=_strategies(data, path),
                          router_encoder=router_encoder)


def _tasks(data: Mapping, path: Path, catalog: Catalog, suite_limit: int | None) -> tuple[SequenceTask, ...]:
    value = data["tasks"]
    if not isinstance(value, Sequence) or len(value) < 2:
        raise UserError("'tasks' must list at least two tasks, in the order they are learned", where=path,
                        line=data.line_of("tasks"), fix="write e.g.  tasks: [sentiment, bbc, snips]")
    tasks = []
    for item, line in zip(value, value.item_lines):
        name, options = _entry(item, path, line, "tasks", "- bbc: {template: t1}")
        check_keys(options, TASK_KEYS, where=path)
        try:
            task = catalog.task(name)
            template = options.get("template") or catalog.default_template(task)
            setup = Setup(task, catalog.template(name, str(template)),
                          catalog.verbalizer(task, options.get("verbalizer")))
        except UserError as error:
            if error.where is not None:
                raise
            raise UserError(error.what, where=path, line=line, fix=error.fix) from None
        limit = _whole(options, "limit", path, minimum=1) if "limit" in options else suite_limit
        if name in (other.name for other in tasks):
            raise UserError(f"task '{name}' is listed twice", where=path, line=line, fix="list each task once")
        tasks.append(SequenceTask(setup, limit))
    return tuple(tasks)


def _strategies(data: Mapping, path: Path) -> dict[str, dict]:
    value = data["strategies"]
    if not isinstance(value, Sequence) or not value:
        raise UserError("'strategies' must list strategies", where=path, line=data.line_of("strategies"),
                        fix="write e.g.  strategies: [prompt-per-task, finetune-sequential]")
    strategies = {}
    for item, line in zip(value, value.item_lines):
        name, options = _entry(item, path, line, "strategies", "- prompt-per-task: {steps: 12}")
        if name not in STRATEGIES:
            raise UserError(f"unknown strategy '{name}'", where=path, line=line, fix=did_you_mean(name, STRATEGIES))
        if name in strategies:
            raise UserError(f"strategy '{name}' is listed twice", where=path, line=line, fix="list each once")
        plain = json.loads(json.dumps(dict(options)))
        if "save_to" in plain:
            raise UserError("option save_to does not apply to a continual strategy", where=path, line=line,
                            fix="leave it out")
        try:
            strategy_options(name, plain)  # a misspelt option fails now, not after the first tasks
        except UserError as error:
            raise UserError(error.what, where=path, line=line, fix=error.fix) from None
        strategies[name] = plain
    return strategies


def _entry(item: Any, path: Path, line: int, key: str, example: str) -> tuple[str, Mapping]:
    if isinstance(item, str):
        options = Mapping()
        options.line, options.key_lines = line, {}
        return item, options
    if isinstance(item, Mapping) and len(item) == 1:
        name, options = next(iter(item.items()))
        if options is None:
            options = Mapping()
            options.line, options.key_lines = line, {}
        if isinstance(options, Mapping):
            return str(name), options
    raise UserError(f"an entry of '{key}' is a name or {{name: {{options}}}}, not {item!r}", where=path, line=line,
                    fix=f"write e.g.  {example}")


def _whole(data: Mapping, key: str, path: Path, *, minimum: int) -> int:
    value = data[key]
    if not _is_int(value) or value < minimum:
        raise UserError(f"'{key}' must be a whole number of at least {minimum}, not {value!r}", where=path,
                        line=data.line_of(key))
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
