"""The Python API: the engine's stages behind a few calls, for notebooks and applications.

    import promptlab
    clf = promptlab.Classifier(task="sentiment", template="t1")        # zero-shot, from catalog files
    clf = promptlab.Classifier(labels={"positive": ["great"], "negative": ["terrible"]},
                               template="Review: {{ text }} It was {{ mask }}.")   # inline, no files
    clf = promptlab.load("runs/soft/seed-13")                         # any trained artefact, text or entity
    clf.predict(["a gripping film"]); clf.predict_proba([...]); clf([...])
    result = promptlab.fewshot(task="sentiment", method="softprompt", k=16, seeds=[13, 21])
    result.accuracy_mean, result.per_seed, result.trained(13).predict([...])
    promptlab.evaluate(clf, data)                                     # the metrics `zeroshot` reports

Keywords are the CLI options of the same name; every mistake raises promptlab.errors.UserError
(exported as promptlab.PromptlabError) with the message the CLI prints. Each call goes through the
functions the commands use: promptlab.apply.registry opens text classifiers, promptlab.apply.entity_predictors
entity predictors, promptlab.methods runs few-shot methods. docs/python.md documents it.
"""
from __future__ import annotations

import functools
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy
import torch

from promptlab.apply.answering import entity_rows, prediction
from promptlab.apply.entity_predictors import Predictor, plan_predictor
from promptlab.apply.registry import Opened, check_trained, open_classifier
from promptlab.apply.rows import PLAIN_FIELD, InputRow, check_row_fields
from promptlab.backends.models import load_model, resolve_model
from promptlab.catalog.catalog import Catalog, Setup
from promptlab.catalog.task import Task
from promptlab.catalog.template import parse_template
from promptlab.catalog.verbalizer import label_name_words, verbalizer_from_words
from promptlab.data.limits import DEFAULT_LIMIT_BY, limit_examples
from promptlab.data.readers import labelled_examples
from promptlab.data.sampling import DEFAULT_SEEDS, parse_seeds
from promptlab.errors import UserError
from promptlab.kinds import kind_of
from promptlab.methods.artefacts import SavedTrained, claim_seed_folders, load_trained
from promptlab.methods.entity_candidates import predicted_tags
from promptlab.methods.pipeline import Classified
from promptlab.metrics.rejection import check_threshold, rejection_metrics
from promptlab.runtime import distributed
from promptlab.runtime.outputs import output_folder, write_json

Input = str | Mapping[str, Any]  # a text, or an example's fields
INLINE = "inline"  # the task name of a Classifier given its labels in code
INPUTS = "<inputs>"  # where an input row's mistake is reported


class Classifier:
    """A ready classifier: text labels (or entity spans) for new inputs, whatever made it.

    Zero-shot from a catalog task (`task`, `template`, `verbalizer`), zero-shot from labels and a
    template given here (`labels` maps each label to its word or words; `template` is Jinja text
    with `{{ mask }}`), or a trained artefact (`trained`: a `fewshot --output DIR/seed-N` folder,
    as `promptlab.load` opens it). The model loads once, here; every check that needs no model
    runs first.
    """

    def __init__(self, task: str | None = None, *, template: str | None = None, verbalizer: str | None = None,
                 labels: Mapping[str, str | Sequence[str]] | Sequence[str] | None = None, model: str | None = None,
                 calibrate: str | None = None, aggregate: str | None = None, trained: str | Path | None = None,
                 device: str = "auto", dtype: str | None = None, batch_size: int | str = "auto",
                 catalogs: Sequence[str | Path] = ()):
        catalog = Catalog.from_options(catalogs)
        saved = load_trained(trained) if trained is not None else None
        if labels is not None:
            if task is not None or saved is not None:
                raise UserError("labels= defines a task of its own; it does not combine with task= or trained=",
                                fix="leave out labels=, or task= and trained=")
            setup = _inline_setup(labels, template)
        else:
            name = task or (saved.metadata.get("task") if saved else None)
            if name is None:
                raise UserError("no task given", fix="pass task=NAME, labels={...} with a template, or trained=DIR")
            if catalog.task(name).kind == "entities":
                plan = plan_predictor(catalog, task=task, trained=None if trained is None else str(trained),
                                      template=template, verbalizer=verbalizer, model=model, calibrate=calibrate,
                                      aggregate=aggregate)
                self._engine: _Text | _Entities = _Entities(plan.task, plan.load(device=device, dtype=dtype))
                return
            setup = _catalog_setup(catalog, task, template, verbalizer, saved)
        check_trained(saved, setup, calibrate=calibrate, aggregate=aggregate, model=model)
        self._engine = _Text(setup, saved, open_classifier(setup, saved, model=model, device=device, dtype=dtype,
                                                           calibrate=calibrate, aggregate=aggregate,
                                                           batch_size=batch_size))

    @property
    def labels(self) -> list[str]:
        """The task's labels in order (an entity task's entity types): predict_proba's columns."""
        return self._engine.task.labels

    @property
    def kind(self) -> str:
        """The task's kind: `classification` or `entities`."""
        return self._engine.task.kind

    @property
    def info(self) -> dict:
        """What classifies: task, files, method, artefact, model and its scoring (as `serve`'s /info tells)."""
        return self._engine.info()

    @property
    def scoring(self) -> dict:
        """How it scores: the model, its kind (causal or masked), device, dtype, batch size, calibration and
        aggregation (text tasks); an entity task's predictor tells its `info`."""
        return self._engine.scoring()

    def predict(self, inputs: Sequence[Input]) -> list:
        """The top label of each input; for an entity task, each text's entities (dicts with character
        offsets `start`, `end` (exclusive), `type`, `text`, `score`)."""
        return self._engine.predict(_listed(inputs))

    def predict_proba(self, inputs: Sequence[Input]) -> numpy.ndarray:
        """Label probabilities, an array (inputs, labels) with columns in `labels` order."""
        return self._engine.logprobs(_listed(inputs)).exp().numpy()

    def __call__(self, inputs: Sequence[Input], *, top_k: int | None = None,
                 reject_below: float | None = None) -> list[dict]:
        """One dict per input, as `predict` writes it: `label` and `probabilities` (with `top_k`, `top`:
        the k best labels; below `reject_below` the label is out_of_scope); for an entity task, `entities`."""
        return self._engine.rows(_listed(inputs), top_k=top_k, reject_below=reject_below)

    def __repr__(self) -> str:
        info = self.info
        return (f"promptlab.Classifier(task={info['task']!r}, method={info['method']!r}, "
                f"model={info['model']!r}, labels={self.labels!r})")


def load(path: str | Path, *, task: str | None = None, model: str | None = None, calibrate: str | None = None,
         aggregate: str | None = None, device: str = "auto", dtype: str | None = None,
         batch_size: int | str = "auto", catalogs: Sequence[str | Path] = ()) -> Classifier:
    """The classifier a trained artefact folder holds (any method, text or entity task); the task, template
    and verbalizer it names are looked up in the catalogs, and its model is checked against the one it saved."""
    return Classifier(task, trained=path, model=model, calibrate=calibrate, aggregate=aggregate, device=device,
                      dtype=dtype, batch_size=batch_size, catalogs=catalogs)


def evaluate(classifier: Classifier, data: str | Path | Sequence[Mapping[str, Any]] | None = None, *,
             split: str = "test", limit: int | None = None, limit_by: str = DEFAULT_LIMIT_BY) -> dict:
    """The metrics `zeroshot` reports for `classifier` on labelled data: a file (JSONL/CSV/TSV; for entity
    tasks CoNLL or JSONL), a list of labelled examples (text tasks), or else the task's `split`. `limit` takes
    the first N examples (`limit_by="stratified"`: the eval suites' sample, each label keeping its share).

    Text tasks: n, accuracy, macro_f1, per_label and confusion. Entity tasks: f1, precision, recall and
    per_type, over exact spans.
    """
    return classifier._engine.evaluate(data, split=split, limit=limit, limit_by=limit_by)


@dataclass
class Evaluation:
    """What a classifier made of labelled examples: `metrics` (as `evaluate` returns them), `predictions`
    (what the task's kind writes: `kind_of(task).write_run(folder, examples, predictions)`) and the
    `seconds` predicting took."""

    metrics: dict
    predictions: dict
    seconds: float


def evaluate_examples(classifier: Classifier, examples: list[dict], *, reject_below: float | None = None,
                      progress: Callable[[int], None] | None = None) -> Evaluation:
    """`evaluate` on examples already read and checked (the kind's `examples` and `labelled`), keeping the
    predictions: what `zeroshot` reports and writes. Below `reject_below` a text answer is out_of_scope (counted
    wrong, with the rejection metrics added); `progress` gets the number of examples done as they are scored."""
    return classifier._engine.evaluation(examples, reject_below=reject_below, progress=progress)


# ---------------------------------------------------------------- few-shot runs

@dataclass
class FewshotResult:
    """A `fewshot` run: `summary` holds what `fewshot --output` writes to fewshot.json (the zero-shot
    score when asked for), and every seed's artefact stays in `folder` for `trained(seed)` (None: nothing saved)."""

    summary: dict
    folder: Path | None
    _opening: dict = field(repr=False)  # catalogs, device, dtype: how trained() opens an artefact
    _scratch: tempfile.TemporaryDirectory | None = field(default=None, repr=False)  # output=None: removed with this

    @property
    def per_seed(self) -> list[dict]:
        return self.summary["per_seed"]

    @property
    def accuracy_mean(self) -> float:
        return self._metric("accuracy_mean")

    @property
    def accuracy_std(self) -> float:
        return self._metric("accuracy_std")

    @property
    def macro_f1_mean(self) -> float:
        return self._metric("macro_f1_mean")

    @property
    def f1_mean(self) -> float:
        return self._metric("f1_mean")

    @property
    def f1_std(self) -> float:
        return self._metric("f1_std")

    def _metric(self, name: str) -> float:
        if name not in self.summary:
            reported = ", ".join(key for key in self.summary if key.endswith(("_mean", "_std")))
            raise UserError(f"this {self.summary['method']} run reports no {name}", fix=f"read one of: {reported}")
        return self.summary[name]

    def trained(self, seed: int) -> Classifier:
        """The classifier seed `seed` trained (its artefact in folder/seed-N, opened by `load`)."""
        runs = {run["seed"]: run for run in self.per_seed}
        if seed not in runs:
            raise UserError(f"this run has no seed {seed}", fix="use one of: " + ", ".join(map(str, runs)))
        if self.folder is None:
            raise UserError("this run saved no artefacts (save=False)", fix="run fewshot with save=True, the default")
        if not runs[seed]["artifact"]:
            raise UserError(f"method '{self.summary['method']}' saves nothing to apply",
                            fix="apply a method that trains (see fewshot's --method)")
        return load(runs[seed]["artifact"], **self._opening)


def fewshot(task: str, *, method: str | None = None, k: int = 16, seeds: Sequence[int] | str = DEFAULT_SEEDS,
            template: str | None = None, verbalizer: str | None = None, model: str | None = None,
            options: Mapping[str, Any] | None = None, steps: int | None = None, lr: float | None = None,
            prompt_length: int | None = None, batch_size: int | None = None, encoder: str | None = None,
            limit: int | None = None, limit_by: str = DEFAULT_LIMIT_BY, reject_below: float | None = None,
            output: str | Path | None = None, save: bool = True, zero_shot: bool = False,
            progress: Callable[[str], None] | None = None,
            overwrite: bool = False, device: str = "auto", dtype: str | None = None,
            catalogs: Sequence[str | Path] = ()) -> FewshotResult:
    """Train `method` on a k-shot sample of the task's train split per seed, and score each on the test split.

    `options` are the method's options (`fewshot --option NAME=VALUE`); `steps`, `lr`, `prompt_length`,
    `batch_size` and `encoder` are the flags that set options of those names. `k` counts training examples per
    class (entity tasks: mentions per entity type); `limit` takes N test examples, chosen as `limit_by` says; below
    `reject_below` a text prediction is out_of_scope (counted wrong). With `output`,
    the seed-N folders and fewshot.json are written there as `fewshot --output` writes them (`overwrite`
    clears seed folders already there); without it they live in a temporary folder as long as the result;
    `save=False` writes nothing (and `trained()` has nothing to open). `zero_shot` also scores the untrained
    prompt (text tasks) into the summary's `zero_shot_accuracy`; `progress` receives the lines `fewshot` prints
    as the run goes (the run, the zero-shot score, one line per seed).
    """
    started = time.perf_counter()
    check_threshold(reject_below)
    catalog = Catalog.from_options(catalogs)
    loaded_task = catalog.task(task)
    kind = kind_of(loaded_task)
    method = kind.check_method(method, loaded_task)
    kind.refuse_flags(loaded_task, {"--encoder": encoder, "--reject-below": reject_below})
    setup = kind.setup(catalog, loaded_task, template, verbalizer, method)
    seed_list = parse_seeds(seeds if isinstance(seeds, str) else ",".join(map(str, seeds)))
    flags = {"steps": steps, "lr": lr, "prompt_length": prompt_length, "batch_size": batch_size, "encoder": encoder}
    chosen = kind.method_options(method, flags, dict(options or {}))
    pool, test = kind.check_data(loaded_task, setup, k, seed_list, limit, limit_by)
    saving = save and distributed.is_main()  # one process writes
    scratch = tempfile.TemporaryDirectory(prefix="promptlab-fewshot-") if saving and output is None else None
    folder = output_folder(output if output is not None else scratch.name) if saving else None
    if folder:
        claim_seed_folders(folder, seed_list, overwrite=overwrite)
    tell = progress or (lambda line: None)
    model_name = kind.model_for(method, chosen, model or loaded_task.model)
    loaded = None
    if kind.uses_language_model(method, chosen):
        resolve_model(model_name)
        loaded = functools.cache(lambda: load_model(model_name, device=device, dtype=dtype))
    if progress:
        described = (f"{loaded().name} ({loaded().kind}, {loaded().device}, {loaded().dtype})" if loaded
                     else kind.describe_model(model_name))  # a method that loads its own model does so as it runs
        files = f" · template {setup.template.name} · verbalizer {setup.verbalizer.name}" if setup else ""
        tell(f"{loaded_task.name}{files} · {described} · {method} · k={k}{kind.k_per} · {len(test)} test "
             f"{kind.unit}")
    baseline = kind.baseline(setup, loaded() if loaded else None, test) if zero_shot else None
    if baseline is not None:
        tell(f"zero-shot ({kind.baseline_calibration} calibration): accuracy {baseline:.4f}")
    per_seed = []
    for seed in seed_list:
        result = kind.run_seed(method, task=loaded_task, setup=setup, model=model_name, loaded=loaded, pool=pool,
                               test=test, k=k, seed=seed, options=chosen,
                               save_to=folder / f"seed-{seed}" if folder else None, device=device,
                               reject_threshold=reject_below)
        tell(kind.seed_line(result))
        if folder:
            kind.write_run(folder / f"seed-{seed}", test, result)
        per_seed.append(kind.row(result))
    summary = {"task": loaded_task.name, "kind": kind.name, **(setup.describe() if setup else {}),
               "model": model_name, "model_fingerprint": loaded().fingerprint if loaded else None,
               "device": str(loaded().device) if loaded else None, "dtype": loaded().dtype if loaded else None,
               "method": method, "k": k, "k_unit": kind.k_unit, "seeds": seed_list, "n": len(test),
               **kind.summary_metrics(per_seed), "options": per_seed[0]["options"], "per_seed": per_seed}
    if zero_shot and kind.baseline_calibration:
        summary.update(zero_shot_accuracy=baseline, zero_shot_calibration=kind.baseline_calibration)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    if folder and output is not None:
        write_json(folder / "fewshot.json", summary)
    return FewshotResult(summary, folder, {"catalogs": tuple(catalogs), "device": device, "dtype": dtype}, scratch)


# ---------------------------------------------------------------- the two kinds of classifier

@dataclass
class _Text:
    """A text classifier opened by promptlab.apply.registry: label log-probabilities per example."""

    setup: Setup
    saved: SavedTrained | None
    opened: Opened

    @property
    def task(self) -> Task:
        return self.setup.task

    def info(self) -> dict:
        return {**self.setup.describe(), **self.opened.describe(), "kind": self.task.kind,
                "method": self.saved.method if self.saved else "zero-shot",
                "trained": str(self.saved.folder) if self.saved else None}

    def logprobs(self, inputs: list[Input]) -> torch.Tensor:
        template = self.setup.template
        # a text fills the template's only field (`text` when it reads several)
        plain = next(iter(template.fields)) if len(template.fields) == 1 else PLAIN_FIELD
        examples = _rows(inputs, plain, template.fields, f"template '{template.name}'")
        if not examples:
            return torch.empty(0, len(self.task.labels))
        return self.opened.classifier.logprobs(examples)

    def predict(self, inputs: list[Input]) -> list[str]:
        return [self.task.labels[index] for index in self.logprobs(inputs).argmax(-1).tolist()]

    def rows(self, inputs: list[Input], *, top_k: int | None, reject_below: float | None) -> list[dict]:
        return [prediction(self.task.labels, row, top_k, reject_below) for row in self.logprobs(inputs)]

    def evaluate(self, data, *, split: str, limit: int | None, limit_by: str) -> dict:
        task, kind = self.task, kind_of(self.task)
        if data is None or isinstance(data, (str, Path)):
            examples = kind.examples(task, split, data=data, limit=limit, limit_by=limit_by)
        else:
            rows = [(dict(row), None) for row in _listed(data)]
            examples = limit_examples(labelled_examples(rows, origin="<data>", labels=task.labels,
                                                        label_field=task.label_field, id_field=task.id_field),
                                      limit, limit_by, where="<data>")
        kind.labelled(examples, data if isinstance(data, (str, Path)) else "<data>" if data else task.path)
        return self.evaluation(examples, reject_below=None, progress=None).metrics

    def evaluation(self, examples: list[dict], *, reject_below: float | None, progress) -> Evaluation:
        started = time.perf_counter()
        logprobs = self.opened.classifier.logprobs(examples, progress=progress)
        result = Classified(self.task.labels, examples, logprobs, time.perf_counter() - started,
                            reject_threshold=reject_below)
        metrics = kind_of(self.task).score(examples, result.predicted, self.task.labels)
        if reject_below is not None:  # a rejection counts as a wrong answer
            gold = [example["label"] for example in examples]
            metrics.update(reject_below=reject_below, **rejection_metrics(gold, result.predicted))
        return Evaluation(metrics, {"predictions": result.rows()}, result.seconds)

    def scoring(self) -> dict:
        return self.opened.describe()


@dataclass
class _Entities:
    """An entity predictor opened by promptlab.apply.entity_predictors: spans per text."""

    task: Task
    predictor: Predictor

    def info(self) -> dict:
        return dict(self.predictor.info)

    def predict(self, inputs: list[Input]) -> list[list[dict]]:
        return [row["entities"] for row in self.rows(inputs, top_k=None, reject_below=None)]

    def logprobs(self, inputs: list[Input]) -> torch.Tensor:
        raise UserError(f"task '{self.task.name}' finds entity spans; it gives no label probabilities per input",
                        fix="use predict() or call the classifier: each entity comes with its score")

    def rows(self, inputs: list[Input], *, top_k: int | None, reject_below: float | None) -> list[dict]:
        for name, value in (("top_k", top_k), ("reject_below", reject_below)):
            if value is not None:
                raise UserError(f"{name} does not apply to entity task '{self.task.name}'", fix=f"leave out {name}")
        tagger = entity_rows(self.predictor, self.task.labels)  # the rows `predict` and `serve` write
        rows = _rows(inputs, PLAIN_FIELD, tagger.fields, tagger.reader, text=tagger.text_fields)
        return tagger.answer(rows, list(range(len(rows))))

    def evaluate(self, data, *, split: str, limit: int | None, limit_by: str) -> dict:
        if data is not None and not isinstance(data, (str, Path)):
            raise UserError(f"entity task '{self.task.name}' reads labelled sentences from a file",
                            fix="pass the path of a CoNLL or JSONL file (tokens and tags), or leave data out")
        kind = kind_of(self.task)
        test = kind.labelled(kind.examples(self.task, split, data=data, limit=limit, limit_by=limit_by),
                             data or self.task.path)
        return self.evaluation(test, reject_below=None, progress=None).metrics

    def evaluation(self, examples: list[dict], *, reject_below: float | None, progress) -> Evaluation:
        kind = kind_of(self.task)
        kind.refuse_flags(self.task, {"--reject-below": reject_below})
        started = time.perf_counter()
        sentences = [example["tokens"] for example in examples]
        spans = self.predictor.predict(sentences)
        seconds = time.perf_counter() - started
        tags = predicted_tags(spans, sentences)
        return Evaluation(kind.score(examples, tags, self.task.labels), {"predicted_tags": tags, "spans": spans},
                          seconds)

    def scoring(self) -> dict:
        return dict(self.predictor.info)


# ---------------------------------------------------------------- helpers

def _rows(inputs: list[Input], plain: str, fields: frozenset[str], reader: str, *, text: bool = False) -> list[dict]:
    """The inputs as rows of fields (a text is the field `plain`), each checked as `predict` checks its rows."""
    rows = []
    for position, item in enumerate(inputs):
        row = {plain: item} if isinstance(item, str) else dict(item)
        check_row_fields(InputRow(row, None, position), fields, reader, INPUTS, text=text)
        rows.append(row)
    return rows


def _listed(inputs) -> list:
    if isinstance(inputs, (str, Mapping)):
        raise UserError("pass a list of inputs, not one text or row", fix="wrap it: clf.predict([text])")
    return list(inputs)


def _inline_setup(labels: Mapping[str, str | Sequence[str]] | Sequence[str], template: str | None) -> Setup:
    """Task, template and verbalizer given in code: labels to words (or label names as their own words)."""
    if template is None or "{{" not in template:
        raise UserError("labels= needs the template's text, e.g. template=\"{{ text }} It was {{ mask }}.\"",
                        fix="pass the Jinja text of the prompt, with {{ mask }} where the label word goes")
    words = dict(labels) if isinstance(labels, Mapping) else {str(label): label_name_words(str(label))
                                                               for label in labels}
    if len(words) < 2:
        raise UserError("labels= names fewer than two labels", fix="give at least two labels")
    task = Task(name=INLINE, path=Path("<labels>"), labels=[str(label) for label in words])
    return Setup(task, parse_template(template, name=INLINE, task=INLINE, path=Path("<template>")),
                 verbalizer_from_words(words, name=INLINE, task=INLINE, where=Path("<labels>")))


def _catalog_setup(catalog: Catalog, task: str | None, template: str | None, verbalizer: str | None,
                   saved: SavedTrained | None) -> Setup:
    """The catalog's files; a template given as text (it holds `{{`) replaces the task's template file."""
    if template is None or "{{" not in template:
        return Setup.for_run(catalog, task, template, verbalizer, saved=saved)
    setup = Setup.for_run(catalog, task, None, verbalizer, saved=saved)
    return Setup(setup.task, parse_template(template, name=INLINE, task=setup.task.name, path=Path("<template>")),
                 setup.verbalizer)

