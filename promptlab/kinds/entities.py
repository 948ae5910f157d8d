"""The entities kind: entity spans over token sequences (named-entity recognition)."""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

from promptlab.backends.aliases import DEFAULT_MODEL
from promptlab.catalog.catalog import Catalog, Setup
from promptlab.catalog.task import Task
from promptlab.data.entity_readers import load_task_sequences
from promptlab.data.entity_sampling import sample_entity_kshot
from promptlab.errors import UserError
from promptlab.kinds.kind import Kind
from promptlab.runtime.outputs import write_atomic, write_jsonl

DEFAULT_MODELS = {"token-finetune": "minilm-l6", "token-head": "minilm-l6", "entity-prompt": DEFAULT_MODEL}


class EntityKind(Kind):
    """Examples are sentences of `tokens` with IOB2 `tags`; the labels are entity types."""

    def read(self, spec, *, base_dir: Path, task: Task, where) -> list[dict]:
        return load_task_sequences(spec, base_dir=base_dir, task=task, where=where)

    def labelled(self, examples: list[dict], where) -> list[dict]:
        unlabelled = [example["id"] for example in examples if example.get("tags") is None]
        if unlabelled:
            raise UserError(f"{len(unlabelled)} sentence(s) have no tags (first: id {unlabelled[0]})", where=where,
                            fix="give every token its tag to evaluate")
        return examples

    def prompt_inputs(self, examples: list[dict]) -> list[dict]:
        from promptlab.methods.entity_candidates import candidate_inputs

        return candidate_inputs(examples)

    def score(self, examples: list[dict], predicted: list, labels: list[str]) -> dict:
        from promptlab.metrics.entities import entity_metrics

        return entity_metrics([example["tags"] for example in examples], predicted, labels)

    def report(self, metrics: dict) -> str:
        from promptlab.metrics.entities import format_entity_metrics

        return format_entity_metrics(metrics)

    def sample(self, pool: Sequence[dict], labels: Sequence[str], k: int, seed: int):
        return sample_entity_kshot(pool, labels, k, seed)

    def model_for(self, method: str, options: dict, model: str | None) -> str:
        return model or DEFAULT_MODELS[method]

    def uses_language_model(self, method: str, options: dict) -> bool:
        return method not in self.own_models

    def setup(self, catalog: Catalog, task: Task, template: str | None, verbalizer: str | None,
              method: str) -> Setup | None:
        """entity-prompt's template (the given one, the task's `template:`, else its only one) and verbalizer;
        token-finetune prompts with none."""
        if method != "entity-prompt":
            return None
        template = template or task.template
        if template is None:
            names = sorted(catalog.template_files(task.name))
            if len(names) != 1:
                raise UserError(f"task '{task.name}' has {len(names) or 'no'} template{'s' if len(names) != 1 else ''}"
                                "; entity-prompt needs one over {{ sentence }} and {{ span }}",
                                fix="pass --template " + "|".join(names) if names
                                else f"write templates/{task.name}/t1.jinja in a catalog")
            template = names[0]
        return Setup.load(catalog, task.name, template, verbalizer)

    def run_seed(self, method: str, *, task: Task, setup: Setup | None, model: str, loaded: Callable | None,
                 pool: list[dict], test: list[dict], k: int, seed: int, options: dict, save_to: Path | None,
                 device: str, reject_threshold: float | None = None) -> dict:
        """k = 0 (or None) runs the method zero-shot (entity-prompt: the candidates typed untrained)."""
        from promptlab.methods import REGISTRY, method_options
        from promptlab.methods.entity_candidates import predicted_tags
        from promptlab.methods.entity_prompt import EntityContext

        started = time.perf_counter()
        context = EntityContext(task=task, setup=setup, model=model, device=device, test_examples=test, seed=seed,
                                options=method_options(method, options), loaded=loaded,
                                save_to=str(save_to) if save_to else None,
                                split=self.sample(pool, task.labels, k, seed) if k else None)
        outcome = REGISTRY[method].run(context)
        predicted = predicted_tags(outcome.spans, context.sentences(test))
        metrics = self.score(test, predicted, task.labels)
        artifact = outcome.save(metrics) if outcome.save else None
        return {"method": method, "seed": seed, "k": k or None, "f1": metrics["f1"],
                "precision": metrics["precision"], "recall": metrics["recall"], "dev": outcome.dev_score,
                "dev_metric": outcome.dev_metric, "train_steps": outcome.train_steps,
                "seconds": round(time.perf_counter() - started, 3), **outcome.details, "artifact": artifact,
                "options": asdict(context.options), "sample": context.split.describe() if context.split else None,
                "metrics": metrics, "weights": outcome.weights, "predicted_tags": predicted, "spans": outcome.spans}

    def seed_line(self, result: dict) -> str:
        dev = "-" if result["dev"] is None else f"{result['dev_metric']} {result['dev']:.4f}"
        return (f"seed {result['seed']:>4}: F1 {result['f1']:.4f}  precision {result['precision']:.4f}  "
                f"recall {result['recall']:.4f}  dev {dev}  steps {result['train_steps']}  {result['seconds']:.1f} s")

    def summary_metrics(self, per_seed: list[dict]) -> dict:
        from promptlab.metrics.text import seed_std

        f1s = [result["f1"] for result in per_seed]
        return {"f1_mean": statistics.mean(f1s), "f1_std": seed_std(f1s),
                "precision_mean": statistics.mean(result["precision"] for result in per_seed),
                "recall_mean": statistics.mean(result["recall"] for result in per_seed)}

    def write_run(self, folder: Path, test: list[dict], result: dict) -> None:
        write_tagged(folder, test, result["predicted_tags"], result["spans"])

    def metrics_record(self, metrics: dict) -> dict:
        """Entity metrics (per type, nested) sit under one key of metrics.json."""
        return {"metrics": metrics}


def write_tagged(folder: Path, examples: list[dict], tags: list[list[str]], spans: list) -> None:
    """predictions.conll (token, gold tag, predicted tag; a blank line between sentences) and spans.jsonl (one
    line per sentence: its id and predicted spans with token offsets `start`, `end` (exclusive), `type`, `text`
    and `score`)."""
    conll = []
    for example, predicted in zip(examples, tags):
        conll += [f"{token}\t{gold}\t{tag}" for token, gold, tag in zip(example["tokens"], example["tags"], predicted)]
        conll.append("")
    write_atomic(folder / "predictions.conll", "\n".join(conll).encode())
    write_jsonl(folder / "spans.jsonl", [
        {"id": example["id"], "spans": [{"start": span.start, "end": span.end, "type": span.type,
                                         "text": " ".join(example["tokens"][span.start:span.end]),
                                         "score": round(score, 6)} for span, score in sentence_spans]}
        for example, sentence_spans in zip(examples, spans)])


def _token_finetune_fingerprint(name: str, device: str) -> str:
    from promptlab.methods.token_finetune import model_fingerprint

    return model_fingerprint(name, device)


ENTITIES = EntityKind(name="entities", methods=("token-finetune", "token-head", "entity-prompt"),
                      default_method="token-finetune",
                      metrics=("f1", "precision", "recall"), k_unit="mentions per entity type", k_per=" per type",
                      unit="sentences",
                      adjective="entity", score_name="F1", predictions=("predicted_tags", "spans"),
                      prediction_files=("predictions.conll", "spans.jsonl"),
                      refused_flags=("--encoder", "--reject-below"),
                      own_models={"token-finetune": _token_finetune_fingerprint,
                                  "token-head": _token_finetune_fingerprint})
