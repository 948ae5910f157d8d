"""The classification kind: one label per text (a task file's default `kind`)."""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Callable, Sequence

from promptlab.backends.aliases import DEFAULT_MODEL
from promptlab.catalog.catalog import Catalog, Setup
from promptlab.catalog.task import Task
from promptlab.data.limits import DEFAULT_LIMIT_BY
from promptlab.data.readers import load_task_examples
from promptlab.data.sampling import sample_kshot
from promptlab.kinds.kind import Kind
from promptlab.runtime.outputs import write_jsonl


class TextKind(Kind):
    """Examples are rows with text fields and a `label`; methods score label words or fit a head."""

    def read(self, spec, *, base_dir: Path, task: Task, where) -> list[dict]:
        return load_task_examples(spec, base_dir=base_dir, task=task, where=where)

    def labelled(self, examples: list[dict], where) -> list[dict]:
        from promptlab.methods.pipeline import require_labels

        require_labels(examples, where)
        return examples

    def score(self, examples: list[dict], predicted: list, labels: list[str]) -> dict:
        from promptlab.metrics.text import classification_metrics

        return classification_metrics([example["label"] for example in examples], predicted, labels)

    def report(self, metrics: dict) -> str:
        from promptlab.metrics.text import format_metrics

        return format_metrics(metrics)

    def sample(self, pool: Sequence[dict], labels: Sequence[str], k: int, seed: int):
        return sample_kshot(pool, labels, k, seed)

    def model_for(self, method: str, options: dict, model: str | None) -> str:
        from promptlab.methods import method_options

        if not self.uses_language_model(method, options):  # setfit, head --encoder: their sentence encoder
            return method_options(method, options).encoder
        return model or DEFAULT_MODEL

    def describe_model(self, name: str) -> str:
        return f"encoder {name}"

    def uses_language_model(self, method: str, options: dict) -> bool:
        from promptlab.methods import uses_scoring_model

        return uses_scoring_model(method, options)

    def setup(self, catalog: Catalog, task: Task, template: str | None, verbalizer: str | None,
              method: str) -> Setup:
        return Setup.load(catalog, task.name, template, verbalizer)

    def check_data(self, task: Task, setup: Setup | None, k: int, seeds: Sequence[int],
                   limit: int | None, limit_by: str = DEFAULT_LIMIT_BY) -> tuple[list[dict], list[dict]]:
        from promptlab.methods.pipeline import render_all

        pool, test = super().check_data(task, setup, k, seeds, limit, limit_by)
        render_all(setup.template, pool + test)  # a template's mistake surfaces before the model loads
        return pool, test

    def baseline(self, setup: Setup | None, loaded, test: list[dict]) -> float | None:
        """Zero-shot accuracy with contextual calibration; None for a method without a language model."""
        if loaded is None:
            return None
        from promptlab.backends import make_backend
        from promptlab.backends.scoring import LabelScorer
        from promptlab.methods.pipeline import classify, render_all
        from promptlab.runtime.progress import progress_bar

        scorer = LabelScorer(make_backend(loaded.model, loaded.tokenizer, loaded.kind, loaded.device),
                             setup.template, setup.verbalizer, calibrate=self.baseline_calibration)
        with progress_bar(len(test), "zero-shot", unit="ex") as bar:
            result = classify(scorer, test, render_all(setup.template, test), setup.task.labels, progress=bar.update)
        return result.metrics["accuracy"]

    def run_seed(self, method: str, *, task: Task, setup: Setup | None, model: str, loaded: Callable | None,
                 pool: list[dict], test: list[dict], k: int, seed: int, options: dict, save_to: Path | None,
                 device: str, reject_threshold: float | None = None) -> dict:
        from promptlab.methods import run_method

        return run_method(method, setup=setup, loaded=loaded() if loaded else None, train_pool=pool,
                          test_examples=test, k=k, seed=seed, options=options, save_to=save_to, device=device,
                          reject_threshold=reject_threshold)

    def seed_line(self, result: dict) -> str:
        dev = "-" if result["dev_accuracy"] is None else f"{result['dev_accuracy']:.4f}"
        line = (f"seed {result['seed']:>4}: accuracy {result['accuracy']:.4f}  macro-F1 {result['macro_f1']:.4f}  "
                f"dev {dev}  steps {result['train_steps']}  {result['seconds']:.1f} s")
        if "reject_below" in result:
            accepted = result["accepted_accuracy"]
            line += (f"  rejected {result['rejected']:.1%} (accuracy of the rest "
                     f"{'-' if accepted is None else f'{accepted:.4f}'})")
        if result.get("artifact"):
            line += f"  saved {result['artifact']}"
        return line

    def summary_metrics(self, per_seed: list[dict]) -> dict:
        from promptlab.metrics.text import seed_std

        accuracies = [result["accuracy"] for result in per_seed]
        return {"accuracy_mean": statistics.mean(accuracies), "accuracy_std": seed_std(accuracies),
                "macro_f1_mean": statistics.mean(result["macro_f1"] for result in per_seed)}

    def write_run(self, folder: Path, test: list[dict], result: dict) -> None:
        write_jsonl(folder / "predictions.jsonl", result["predictions"])


TEXT = TextKind(name="classification",
                methods=("softprompt", "finetune", "lora", "finetune-head", "icl", "head", "setfit", "majority"),
                default_method="softprompt", metrics=("accuracy", "macro_f1"), k_unit="training examples per class",
                k_per="",
                unit="examples", adjective="text", score_name="accuracy", predictions=("predictions",),
                prediction_files=("predictions.jsonl",),
                baseline_calibration="contextual")
