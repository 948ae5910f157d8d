"""Evaluation suites: a grid of runs named in one YAML file, checked strictly before anything runs.

    description: Sentiment, zero-shot against few-shot
    tasks: [sentiment, cr]              # or a mapping: {sentiment: {limit: 100, shots: [0, 4]}, cr: {test: my/cr.jsonl}}
    models: [smollm2-135m]              # aliases, local model folders or hub ids
    templates: [t1, t2]                 # or {sentiment: [t1], cr: [t2]}; default: every template of each task
    verbalizers: {sentiment: [default, many]}   # same forms; default: each task's default verbalizer
    methods:
      - zeroshot: {calibrate: [none, contextual]}   # one method per calibration
      - softprompt: {steps: 30}         # options of the method (checked here), passed to it
      - majority
      - softprompt: {steps: 100, label: softprompt-long}   # `label` names a second variant of a method
      - finetune: {model: roberta-base} # `model`: this variant runs on it instead of on `models`
    shots: [0, 4, 16]                   # k per class: k=0 runs the zero-shot methods, k>0 the few-shot ones
    seeds: [13, 21, 42]                 # each k>0 run once per seed; zero-shot is deterministic, run once
    limit: 200                          # test examples per task: a fixed, stratified sample
    metrics: [accuracy, macro_f1]       # what the summary reports; the first one a task has is plotted

`tasks`, `models`, `methods` and `shots` are required, `seeds` too when a k is above 0. A task
entry may hold `limit` and `shots` (overriding the suite's: a small train split may not have the
2k examples per label that a k needs) and `test`/`train` data specs that replace the task's own
splits (a file relative to the suite file, or `source:NAME/SPLIT`).

Tasks of every kind (promptlab.kinds) may share a suite: a few-shot method runs on the tasks of
the kind it belongs to (entity tasks: token-finetune, entity-prompt; k counts mentions per type),
`zeroshot` on every task (entity tasks: entity-prompt zero-shot), and each task reports the
metrics of its kind (text: accuracy, macro_f1; entities: f1, precision, recall).

Every run of the grid is a `RunConfig`: plain data, with the content hashes of its template and
verbalizer, which the runner hashes (with the examples the run reads) into the run's key.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptlab.catalog.catalog import Catalog, Setup
from promptlab.data.readers import SOURCE_PREFIX
from promptlab.backends.calibration import CALIBRATIONS
from promptlab.errors import UserError, did_you_mean, unknown
from promptlab.kinds import ALL_METHODS, Kind, kind_of, method_kind
from promptlab.catalog.verbalizer import AGGREGATIONS
from promptlab.catalog.yamlfile import Mapping, Sequence, check_keys, load_yaml

SUITE_KEYS = ("description", "tasks", "models", "templates", "verbalizers", "methods", "shots", "seeds",
              "limit", "metrics")
TASK_ENTRY_KEYS = ("limit", "shots", "test", "train")
ZEROSHOT = "zeroshot"
ZEROSHOT_OPTIONS = ("calibrate", "aggregate", "label", "model")
VARIANT_KEYS = ("label", "model")  # what a method entry holds besides the method's options
SUITE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class TaskEntry:
    name: str
    limit: int | None  # test examples (the entry's limit, else the suite's); None: the whole test split
    shots: tuple[int, ...]  # the entry's shots, else the suite's; sorted


@dataclass(frozen=True)
class MethodVariant:
    method: str  # zeroshot or a few-shot method of a task kind (promptlab.kinds)
    label: str  # its name in rows, tables and plots
    options: dict = field(default_factory=dict)
    model: str | None = None  # the one model it runs on; None: every model of the suite
    line: int = field(default=0, compare=False)  # where the suite file lists it

    @property
    def zero_shot(self) -> bool:
        return self.method == ZEROSHOT

    def applies_to(self, kind: Kind) -> bool:
        return self.zero_shot or self.method in kind.methods

    def runs_on(self, model: str, suite_models: tuple[str, ...]) -> bool:
        return model == self.model if self.model else model in suite_models


@dataclass(frozen=True)
class RunConfig:
    """One run of the grid, as plain data: what results.jsonl records and the run's key hashes."""

    task: str
    data: dict  # split -> data spec the run reads ("test"; "train" too when k > 0)
    limit: int | None
    model: str
    template: str
    template_hash: str
    verbalizer: str
    verbalizer_hash: str
    method: str
    label: str
    options: dict
    k: int
    seed: int | None  # None for zero-shot runs, which have nothing to draw


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    description: str
    tasks: tuple[TaskEntry, ...]
    models: tuple[str, ...]
    setups: dict[str, tuple[Setup, ...]]  # task -> one Setup per (template, verbalizer)
    methods: tuple[MethodVariant, ...]
    seeds: tuple[int, ...]
    metrics: tuple[str, ...]

    def setup(self, config: RunConfig) -> Setup:
        return next(setup for setup in self.setups[config.task]
                    if (setup.template.name, setup.verbalizer.name) == (config.template, config.verbalizer))

    @property
    def run_models(self) -> tuple[str, ...]:
        """Every model a unit runs on, in the order the methods first use them (a method that names its model
        uses that one, the others the suite's models)."""
        used = [model for variant in self.methods for model in ((variant.model,) if variant.model else self.models)]
        return tuple(dict.fromkeys(used))

    def kind(self, task: str) -> Kind:
        return kind_of(self.setups[task][0].task)


# ---------------------------------------------------------------- finding and loading

def suite_path(name: str, catalog: Catalog) -> Path:
    """A suite named in a catalog (`eval_suites/<name>.yaml`), or a path to a .yaml file."""
    if name.endswith(SUITE_SUFFIXES) or "/" in name:
        path = Path(name).expanduser()
        if not path.is_file():
            raise UserError(f"suite file '{name}' does not exist",
                            fix="give a suite name (" + ", ".join(sorted(catalog.suite_files())) + ") or a .yaml path")
        return path
    files = catalog.suite_files()
    if name not in files:
        raise unknown("suite", name, files)
    return files[name]


def load_suite(name: str, catalog: Catalog) -> Suite:
    """Load a suite and every task, template and verbalizer it names; any mistake is a UserError with a line."""
    path = suite_path(name, catalog)
    data = load_yaml(path)
    check_keys(data, SUITE_KEYS, where=path, required=("tasks", "models", "methods", "shots"))
    methods = _methods(data, path)
    entries = _task_entries(data, path, catalog, methods)
    seeds = _int_list(data, "seeds", path, minimum=0) if "seeds" in data else ()
    if not seeds and any(k > 0 for entry in entries for k in entry.shots):
        raise UserError("few-shot runs need seeds", where=path, line=data.line or None,
                        fix="add e.g.  seeds: [13, 21, 42]")
    kinds = {entry.name: kind_of(catalog.task(entry.name)) for entry in entries}
    _check_every_method_applies(methods, kinds, path)
    return Suite(
        name=path.stem, path=path, description=_text(data, "description", path),
        tasks=entries, models=_models(data, path), setups=_setups(data, path, catalog, [e.name for e in entries]),
        methods=methods, seeds=seeds, metrics=_metrics(data, path, kinds))


def expand(suite: Suite) -> list[RunConfig]:
    """Every run of the suite, grouped by model (each model loads once), then task and setup.

    A method variant runs on the tasks of its kind (zeroshot on all), on the suite's models or the one it names.
    """
    configs = []
    for model in suite.run_models:
        for entry in suite.tasks:
            kind = suite.kind(entry.name)
            for setup in suite.setups[entry.name]:
                for k in entry.shots:
                    for variant in suite.methods:
                        if (variant.zero_shot == (k == 0) and variant.applies_to(kind)
                                and variant.runs_on(model, suite.models)):
                            configs += [_config(entry, setup, model, variant, k, seed)
                                        for seed in ([None] if k == 0 else suite.seeds)]
    return configs


def _config(entry: TaskEntry, setup: Setup, model: str, variant: MethodVariant, k: int,
            seed: int | None) -> RunConfig:
    splits = ("test", "train") if k > 0 else ("test",)
    return RunConfig(task=entry.name, data={split: setup.task.data.get(split) for split in splits},
                     limit=entry.limit, model=model,
                     template=setup.template.name, template_hash=setup.template.content_hash,
                     verbalizer=setup.verbalizer.name, verbalizer_hash=setup.verbalizer.content_hash,
                     method=variant.method, label=variant.label, options=variant.options, k=k, seed=seed)


# ---------------------------------------------------------------- sections

def _task_entries(data: Mapping, path: Path, catalog: Catalog,
                  methods: tuple[MethodVariant, ...]) -> tuple[TaskEntry, ...]:
    suite_limit = _positive_int(data.get("limit"), "limit", path, data.line_of("limit"))
    suite_shots = _int_list(data, "shots", path, minimum=0)
    value = data["tasks"]
    if isinstance(value, Mapping):
        items = [(name, options, value.line_of(name)) for name, options in value.items()]
    else:
        items = [(name, None, line) for name, line in _named_items(value, "tasks", path, data.line_of("tasks"))]
    if not items:
        raise UserError("'tasks' is empty", where=path, line=data.line_of("tasks"), fix="name at least one task")
    entries = []
    for name, options, line in items:
        with _located(path, line):
            kind = kind_of(catalog.task(str(name)))
        options = _task_options(options, str(name), path, line)
        limit = _positive_int(options.get("limit"), "limit", path, options.line_of("limit"))
        given = options if "shots" in options else data
        shots = _int_list(options, "shots", path, minimum=0) if "shots" in options else suite_shots
        _check_grid(given, path, tuple(variant for variant in methods if variant.applies_to(kind)), shots, kind)
        entries.append(TaskEntry(name=str(name), limit=limit or suite_limit, shots=tuple(sorted(shots))))
    return tuple(entries)


def _task_options(options: Any, name: str, path: Path, line: int) -> Mapping:
    if options is None:
        return _empty_mapping(line)
    if not isinstance(options, Mapping):
        raise UserError(f"task '{name}' must map to options, not {options!r}", where=path, line=line,
                        fix=f"write e.g.  {name}: {{limit: 200}}")
    check_keys(options, TASK_ENTRY_KEYS, where=path)
    return options


def _data_overrides(data: Mapping, path: Path) -> dict[str, dict[str, Any]]:
    """task -> split -> data spec written in the suite, file paths made relative to the suite file."""
    value = data["tasks"]
    if not isinstance(value, Mapping):
        return {}
    overrides = {}
    for name, options in value.items():
        splits = {split: options[split] for split in ("test", "train") if options and split in options}
        overrides[str(name)] = {split: _spec_from(spec, path) for split, spec in splits.items()}
    return overrides


def _spec_from(spec: Any, path: Path) -> Any:
    if isinstance(spec, str) and not spec.startswith(SOURCE_PREFIX):
        return str((path.parent / spec).resolve())
    return spec


def _setups(data: Mapping, path: Path, catalog: Catalog, task_names: list[str]) -> dict[str, tuple[Setup, ...]]:
    templates = _per_task_names(data, "templates", path, task_names)
    verbalizers = _per_task_names(data, "verbalizers", path, task_names)
    overrides = _data_overrides(data, path)
    setups = {}
    for name in task_names:
        task = catalog.task(name)
        task = dataclasses.replace(task, data={**task.data, **overrides.get(name, {})})
        loaded_templates = _templates_of(catalog, name, templates.get(name), path, data.line_of("tasks"))
        loaded_verbalizers = [_verbalizer(catalog, task, verbalizer, path, line)
                              for verbalizer, line in verbalizers.get(name, [(None, data.line_of("tasks"))])]
        setups[name] = tuple(Setup(task, template, verbalizer)
                             for template in loaded_templates for verbalizer in loaded_verbalizers)
    return setups


def _templates_of(catalog: Catalog, task: str, names: list[tuple[str, int]] | None, path: Path, line: int) -> list:
    if names is None:
        names = [(name, line) for name in sorted(catalog.template_files(task))]
        if not names:
            raise UserError(f"task '{task}' has no templates", where=path, line=line,
                            fix=f"write templates/{task}/<name>.jinja in a catalog")
    loaded = []
    for name, name_line in names:
        with _located(path, name_line):
            loaded.append(catalog.template(task, name))
    return loaded


def _verbalizer(catalog: Catalog, task, name: str | None, path: Path, line: int):
    with _located(path, line):
        return catalog.verbalizer(task, name)


def _per_task_names(data: Mapping, key: str, path: Path, task_names: list[str]) -> dict[str, list[tuple[str, int]]]:
    """`key` as a list for every task, or a mapping task -> list; tasks left out get None (the default)."""
    if key not in data:
        return {}
    value = data[key]
    if not isinstance(value, Mapping):
        names = _named_items(value, key, path, data.line_of(key))
        return {task: names for task in task_names}
    result = {}
    for task, names in value.items():
        if task not in task_names:
            raise UserError(f"'{key}' names task '{task}', which is not in this suite's tasks", where=path,
                            line=value.line_of(task), fix=did_you_mean(str(task), task_names))
        result[task] = _named_items(names, f"{key} of {task}", path, value.line_of(task))
    return result


def _models(data: Mapping, path: Path) -> tuple[str, ...]:
    return tuple(name for name, _ in _named_items(data["models"], "models", path, data.line_of("models")))


def _methods(data: Mapping, path: Path) -> tuple[MethodVariant, ...]:
    value = data["methods"]
    if not isinstance(value, Sequence) or not value:
        raise UserError("'methods' must be a list of methods", where=path, line=data.line_of("methods"),
                        fix="write e.g.  methods: [zeroshot, majority, {softprompt: {steps: 30}}]")
    variants: list[MethodVariant] = []
    first_line: dict[str, int] = {}
    for item, line in zip(value, value.item_lines):
        name, options = _method_item(item, path, line)
        for variant in _variants(name, options, path, line):
            if variant.label in first_line:
                raise UserError(f"method '{variant.label}' is listed twice (first on line {first_line[variant.label]})",
                                where=path, line=line, fix="give one of them another name with  label: ...")
            first_line[variant.label] = line
            variants.append(variant)
    return tuple(variants)


def _method_item(item: Any, path: Path, line: int) -> tuple[str, Mapping]:
    if isinstance(item, str):
        name, options = item, _empty_mapping(line)
    elif isinstance(item, Mapping) and len(item) == 1:
        name, options = next(iter(item.items()))
        options = _empty_mapping(line) if options is None else options
    else:
        raise UserError(f"a method is a name or {{name: {{options}}}}, not {item!r}", where=path, line=line,
                        fix="write e.g.  - majority  or  - softprompt: {steps: 30}")
    if name != ZEROSHOT and name not in ALL_METHODS:
        raise UserError(f"unknown method '{name}'", where=path, line=line,
                        fix=did_you_mean(str(name), (ZEROSHOT, *ALL_METHODS)))
    if not isinstance(options, Mapping):
        raise UserError(f"the options of method '{name}' must be a mapping, not {options!r}", where=path,
                        line=line, fix=f"write e.g.  - {name}: {{option: value}}")
    return name, options


def _variants(name: str, options: Mapping, path: Path, line: int) -> list[MethodVariant]:
    label = options.get("label", name)
    if not isinstance(label, str) or not label:
        raise UserError(f"the label of method '{name}' must be a name", where=path,
                        line=options.line_of("label"), fix="write e.g.  label: softprompt-long")
    model = options.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise UserError(f"the model of method '{name}' must be a name", where=path, line=options.line_of("model"),
                        fix="write e.g.  model: minilm-l6")
    if name != ZEROSHOT:
        rest = json.loads(json.dumps({key: value for key, value in options.items() if key not in VARIANT_KEYS}))
        from promptlab.methods import method_options  # the one check of every method's options

        with _located(path, line):
            method_options(name, rest)  # a misspelt option fails now, not hours into the grid
        return [MethodVariant(name, label, rest, model, line)]
    check_keys(options, ZEROSHOT_OPTIONS, where=path)
    calibrations = _choices(options.get("calibrate", "none"), "calibrate", CALIBRATIONS, path,
                            options.line_of("calibrate"))
    (aggregate,) = _choices(options.get("aggregate", "logsumexp"), "aggregate", AGGREGATIONS, path,
                            options.line_of("aggregate"), single=True)
    return [MethodVariant(ZEROSHOT, f"{label} ({calibration})", {"calibrate": calibration, "aggregate": aggregate},
                          model, line) for calibration in calibrations]


def _choices(value: Any, key: str, allowed: tuple[str, ...], path: Path, line: int, *, single: bool = False) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or (single and len(values) > 1):
        raise UserError(f"'{key}' must be one of {', '.join(allowed)}" + ("" if single else ", or a list of them"),
                        where=path, line=line, fix=f"write e.g.  {key}: {allowed[0]}")
    for choice in values:
        if choice not in allowed:
            raise UserError(f"unknown {key} '{choice}'", where=path, line=line, fix=did_you_mean(str(choice), allowed))
    return list(values)


def _metrics(data: Mapping, path: Path, kinds: dict[str, Kind]) -> tuple[str, ...]:
    """The listed metrics (default: every metric of the tasks' kinds); each task must have one of them."""
    known = tuple(dict.fromkeys(metric for kind in kinds.values() for metric in kind.metrics))
    if "metrics" not in data:
        return known
    names = _named_items(data["metrics"], "metrics", path, data.line_of("metrics"))
    for name, line in names:
        if name not in known:
            raise UserError(f"unknown metric '{name}'", where=path, line=line, fix=did_you_mean(name, known))
    listed = tuple(name for name, _ in names)
    for task, kind in kinds.items():
        if not set(listed) & set(kind.metrics):
            raise UserError(f"'metrics' lists none of task '{task}''s ({', '.join(kind.metrics)})", where=path,
                            line=data.line_of("metrics"), fix=f"add {kind.metrics[0]}")
    return listed


def _check_every_method_applies(methods: tuple[MethodVariant, ...], kinds: dict[str, Kind], path: Path) -> None:
    for variant in methods:
        if not any(variant.applies_to(kind) for kind in kinds.values()):
            kind = method_kind(variant.method)
            raise UserError(f"method '{variant.method}' applies to none of this suite's tasks (it runs on tasks of "
                            f"kind {kind.name}: {kind.description})", where=path, line=variant.line,
                            fix="remove it, or add a task of that kind")


def _check_grid(data: Mapping, path: Path, methods: tuple[MethodVariant, ...], shots: tuple[int, ...],
                kind: Kind) -> None:
    """Every k of a task has a method to run and every method of its kind a k."""
    has_zero_shot = any(variant.zero_shot for variant in methods)
    has_few_shot = not all(variant.zero_shot for variant in methods)
    line = data.line_of("shots")
    if 0 in shots and not has_zero_shot:
        raise UserError("shots include 0 but no zero-shot method is listed", where=path, line=line,
                        fix="add  - zeroshot  to methods, or drop 0 from shots")
    if has_zero_shot and 0 not in shots:
        raise UserError("zeroshot is listed but shots do not include 0", where=path, line=line,
                        fix="add 0 to shots")
    if any(k > 0 for k in shots) and not has_few_shot:
        raise UserError("shots above 0 need a few-shot method", where=path, line=line,
                        fix="add one of " + ", ".join(kind.methods) + " to methods, or keep only shots: [0]")
    if has_few_shot and not any(k > 0 for k in shots):
        raise UserError("few-shot methods are listed but every shot is 0", where=path, line=line,
                        fix="add k values above 0, e.g.  shots: [0, 4, 16]")


# ---------------------------------------------------------------- small readers

def _named_items(value: Any, key: str, path: Path, line: int) -> list[tuple[str, int]]:
    """A name, or a non-empty list of distinct names, each with its line."""
    if isinstance(value, str):
        return [(value, line)]
    if not isinstance(value, Sequence) or not value:
        raise UserError(f"'{key}' must be a name or a list of names", where=path, line=line,
                        fix=f"write e.g.  {key.split()[0]}: [name1, name2]")
    items = []
    for item, item_line in zip(value, value.item_lines):
        if not isinstance(item, str) or not item:
            raise UserError(f"'{key}' lists {item!r}, which is not a name", where=path, line=item_line, fix="quote it")
        if item in [name for name, _ in items]:
            raise UserError(f"'{key}' lists '{item}' twice", where=path, line=item_line, fix="list each name once")
        items.append((item, item_line))
    return items


def _int_list(data: Mapping, key: str, path: Path, *, minimum: int) -> tuple[int, ...]:
    value, line = data[key], data.line_of(key)
    if not isinstance(value, Sequence) or not value:
        raise UserError(f"'{key}' must be a list of whole numbers", where=path, line=line,
                        fix=f"write e.g.  {key}: [0, 4, 16]" if key == "shots" else f"write e.g.  {key}: [13, 21, 42]")
    for item, item_line in zip(value, value.item_lines):
        if not _is_int(item) or item < minimum:
            raise UserError(f"'{key}' lists {item!r}: expected a whole number of at least {minimum}",
                            where=path, line=item_line)
        if value.count(item) > 1:
            raise UserError(f"'{key}' lists {item} twice", where=path, line=item_line, fix="list each value once")
    return tuple(value)


def _positive_int(value: Any, key: str, path: Path, line: int) -> int | None:
    if value is None:
        return None
    if not _is_int(value) or value < 1:
        raise UserError(f"'{key}' must be a whole number of at least 1, not {value!r}", where=path, line=line)
    return value


def _empty_mapping(line: int) -> Mapping:
    """No options, as a Mapping whose keys all report `line` (where the entry was written)."""
    empty = Mapping()
    empty.line, empty.key_lines = line, {}
    return empty


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(data: Mapping, key: str, path: Path) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise UserError(f"'{key}' must be text", where=path, line=data.line_of(key), fix="quote it")
    return value


@contextmanager
def _located(path: Path, line: int) -> Iterator[None]:
    """Give a catalog lookup error (unknown name) the suite's file and line; errors inside the named file keep theirs."""
    try:
        yield
    except UserError as error:
        if error.where is not None:
            raise
        raise UserError(error.what, where=path, line=line, fix=error.fix) from None
