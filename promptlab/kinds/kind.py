"""What every task kind gives the stages above it (the protocol; promptlab.kinds.text and .entities implement it).

A kind reads a task's examples, says which few-shot methods run on it and checks their options (through
the one method registry, promptlab.methods), samples the k-shot split, runs a method for one seed,
scores predictions with its metrics and writes the rows of a run. Commands, suites, `predict` and `serve`
take the task's kind object and call it; they never ask which kind they hold.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from promptlab.catalog.catalog import Catalog, Setup
from promptlab.catalog.task import KIND_RULES, Task
from promptlab.data.limits import DEFAULT_LIMIT_BY, limit_examples
from promptlab.data.overlap import train_pool_without_test_texts
from promptlab.errors import UserError

# CLI flags that set method options; a flag the method does not take is an error, not ignored.
OPTION_FLAGS = {"steps": "--steps", "lr": "--lr", "prompt_length": "--prompt-length",
                "batch_size": "--train-batch-size", "encoder": "--encoder"}


@dataclass(frozen=True)
class Kind(ABC):
    name: str  # what a task file's `kind:` says (promptlab.catalog.task.KIND_RULES)
    methods: tuple[str, ...]  # `fewshot --method` choices, in the method registry (promptlab.methods)
    default_method: str
    metrics: tuple[str, ...]  # what a run records; the first is its score (plotted, in progress lines)
    k_unit: str  # what a k counts
    k_per: str  # how a command line says what a k counts ("k=5 per type"; "" for per class)
    unit: str  # what one example is called in messages ("examples", "sentences")
    adjective: str  # "a text task", "an entity task" in messages
    score_name: str  # how messages name the score (metrics[0])
    # the calibration of the zero-shot score `fewshot` prints beside the few-shot ones (None: no such score)
    baseline_calibration: str | None = None
    # flags of the other kinds' commands, refused by name rather than ignored
    refused_flags: tuple[str, ...] = ()
    # methods that load their model themselves rather than score through a shared language model:
    # method -> (model name, device) -> the fingerprint of the weights the name loads now
    own_models: dict[str, Callable[[str, str], str]] = field(default_factory=dict)
    predictions: tuple[str, ...] = ()  # the fields of a run's result that hold its predictions (too long to keep)
    prediction_files: tuple[str, ...] = ()  # what write_run writes into a folder

    @property
    def description(self) -> str:
        return KIND_RULES[self.name].description

    # -- data
    @abstractmethod
    def read(self, spec, *, base_dir: Path, task: Task, where) -> list[dict]:
        """The examples a data spec names (a file, `source:NAME/SPLIT`, a hub data set) relative to `base_dir`."""

    def examples(self, task: Task, split: str = "test", *, data: str | Path | None = None,
                 limit: int | None = None, limit_by: str = DEFAULT_LIMIT_BY) -> list[dict]:
        """The examples of a split (or of `data`, a file that replaces it); with `limit`, that many of them,
        chosen as `limit_by` says (promptlab.data.limits: the first, or a stratified sample)."""
        spec, base = task.data_spec(split, data=data)
        examples = self.read(spec, base_dir=base, task=task, where=task.path)
        return limit_examples(examples, limit, limit_by, where=data or task.path)

    @abstractmethod
    def labelled(self, examples: list[dict], where) -> list[dict]:
        """`examples`, each with its gold answer; a UserError names the first without."""

    def prompt_inputs(self, examples: list[dict]) -> list[dict]:
        """What one prompt renders, per example (an entity task: its candidate spans)."""
        return examples

    def train_pool(self, train: list[dict], test: list[dict], *, where) -> list[dict]:
        """The train examples a k-shot sample may draw from: none whose text is a test example's."""
        return train_pool_without_test_texts(train, test, where=where)

    @abstractmethod
    def sample(self, pool: Sequence[dict], labels: Sequence[str], k: int, seed: int):
        """The seed's k-shot split (promptlab.data.sampling.KShotSplit)."""

    @abstractmethod
    def score(self, examples: list[dict], predicted: list, labels: list[str]) -> dict:
        """The kind's metrics of `predicted` (a label per example; an entity task: tags per token) against the
        examples' gold answers."""

    @abstractmethod
    def report(self, metrics: dict) -> str:
        """The metrics as a command prints them."""

    # -- methods
    def check_method(self, method: str | None, task: Task) -> str:
        """The method (the kind's default when None), refused when it runs on another kind's tasks."""
        method = method or self.default_method
        if method not in self.methods:
            raise UserError(f"method '{method}' does not apply to task '{task.name}' "
                            f"(kind {self.name}: {self.description})", where=task.path,
                            fix="use --method " + "|".join(self.methods))
        return method

    def refuse_flags(self, task: Task, flags: dict) -> None:
        """Flags of another kind's tasks, given a value, are refused by name."""
        for flag, value in flags.items():
            if flag in self.refused_flags and value is not None:
                raise UserError(f"{flag} does not apply to {self.adjective} task '{task.name}'",
                                fix=f"leave out {flag}")

    def method_options(self, method: str, flags: dict, extra: dict) -> dict:
        """The options given by flags and --option NAME=VALUE, checked against the method before any model
        loads: a flag the method has no option for is refused by the flag's name."""
        from promptlab.methods import DEFAULT_OPTIONS, method_options

        for name, value in flags.items():
            if value is not None and name not in DEFAULT_OPTIONS[method]:
                raise UserError(f"{OPTION_FLAGS[name]} does not apply to --method {method}",
                                fix=f"leave out {OPTION_FLAGS[name]}")
        if "save_to" in extra:
            raise UserError("--option save_to is set by --output", fix="pass --output DIR instead")
        given = {**{name: value for name, value in flags.items() if value is not None}, **extra}
        method_options(method, given)
        return given

    @abstractmethod
    def model_for(self, method: str, options: dict, model: str | None) -> str:
        """The model `fewshot --method` trains: --model, else the method's default."""

    def describe_model(self, name: str) -> str:
        """A method's own model (one it loads as it runs) as the command's first line names it."""
        return name

    @abstractmethod
    def uses_language_model(self, method: str, options: dict) -> bool:
        """Whether the method scores through the shared language model (others load their own model)."""

    @abstractmethod
    def setup(self, catalog: Catalog, task: Task, template: str | None, verbalizer: str | None,
              method: str) -> Setup | None:
        """The template and verbalizer a method prompts with (None for a method that uses none)."""

    # -- a few-shot run
    def check_data(self, task: Task, setup: Setup | None, k: int, seeds: Sequence[int],
                   limit: int | None, limit_by: str = DEFAULT_LIMIT_BY) -> tuple[list[dict], list[dict]]:
        """The train pool and the test examples (`limit` of them, chosen as `limit_by` says), checked and sampled
        for every seed: data mistakes surface before any model loads."""
        full_test = self.labelled(self.examples(task, "test"), task.path)
        pool = self.train_pool(self.examples(task, "train"), full_test, where=task.path)
        test = limit_examples(full_test, limit, limit_by, where=task.path)
        for seed in seeds:
            self.sample(pool, task.labels, k, seed)
        return pool, test

    def baseline(self, setup: Setup | None, loaded, test: list[dict]) -> float | None:
        """A zero-shot score to print beside the few-shot ones (None: the kind has none)."""
        return None

    @abstractmethod
    def run_seed(self, method: str, *, task: Task, setup: Setup | None, model: str, loaded: Callable | None,
                 pool: list[dict], test: list[dict], k: int, seed: int, options: dict, save_to: Path | None,
                 device: str, reject_threshold: float | None = None) -> dict:
        """Sample the seed's k-shot split, run the method on it and score the test examples: the run's fields,
        its metrics and its predictions. `loaded` gives the shared language model (loaded on first use)."""

    @abstractmethod
    def seed_line(self, result: dict) -> str:
        """The line `fewshot` prints for a seed's run."""

    @abstractmethod
    def summary_metrics(self, per_seed: list[dict]) -> dict:
        """The metrics of the seeds' runs, each as mean (and the score's spread)."""

    @abstractmethod
    def write_run(self, folder: Path, test: list[dict], result: dict) -> None:
        """A run's predictions, next to its trained artefact."""

    def metrics_record(self, metrics: dict) -> dict:
        """How `zeroshot`'s metrics.json holds the metrics beside its summary: text tasks inline them."""
        return metrics

    def row(self, result: dict) -> dict:
        """What fewshot.json keeps of a seed's run: all but its predictions."""
        return {name: value for name, value in result.items() if name not in self.predictions}
