"""The one registry of few-shot methods, text and entity alike, and the one check of their options.

    REGISTRY[method] -> Method(run, options, description, kind)   # kind: the task kind it runs on
    method_options(method, {name: value}) -> the method's options dataclass (a mistake is a UserError)

Text methods run behind one entry point, all scoring through the zero-shot path where they prompt:

    run_method(method, setup=, loaded=, train_pool=, test_examples=, k=, seed=, options=) -> dict

samples the k-shot split (k train + k dev per class) from `train_pool` with `seed`, runs the
method, and returns accuracy, macro_f1, dev_accuracy, seconds, train_steps, the sampled ids with
their checksum, the options used, the metrics and one prediction row per test example. `options`
overrides the method's defaults (DEFAULT_OPTIONS[method]); unknown names are a UserError. No
method leaves the shared model changed: softprompt freezes it, finetune and lora train a copy. With
`save_to`, what the method trained is saved there as an artefact (promptlab.methods.artefacts)
that `predict`, `serve` and `zeroshot --trained` apply; a new method also registers how to apply
it in promptlab.apply.registry. Entity methods (token-finetune, token-head, entity-prompt:
promptlab.methods.entity_prompt)
run on an EntityContext; their kind (promptlab.kinds.entities) samples, runs and scores them.

    artefacts.py            the trained folder every method leaves (save, load, verify)
    context.py, training.py what a method receives and returns; the one training loop
    softprompt.py, finetune.py, lora.py, icl.py, baselines.py, encoder_heads.py   the text methods
    logistic_head.py        the frozen-feature head of `head`, `setfit` and the continual router
    token_finetune.py, token_head.py, entity_prompt.py, entity_candidates.py      the entity methods
    tag_decoding.py         IOB2-valid decoding of per-word tag probabilities (Viterbi)
    demonstrations.py, pipeline.py, verbalizer_search.py   in-context examples, scoring, label-word search
    option_help.py          a method's options as `fewshot --help-method` shows them
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from promptlab.methods.artefacts import save_trained, trained_identity
from promptlab.catalog.catalog import Setup
from promptlab.errors import UserError, did_you_mean, unknown
from promptlab.methods.baselines import (
    HeadOptions,
    MajorityOptions,
    run_head,
    run_majority,
)
from promptlab.methods.context import MethodContext, MethodOutcome
from promptlab.methods.encoder_heads import SetFitOptions, run_setfit
from promptlab.methods.entity_prompt import EntityPromptOptions, run_entity_prompt, run_token_finetune, run_token_head
from promptlab.methods.finetune import (
    FinetuneHeadOptions,
    FinetuneOptions,
    run_finetune,
    run_finetune_head,
)
from promptlab.methods.icl import ICLOptions, run_icl
from promptlab.methods.lora import LoraOptions, run_lora
from promptlab.methods.softprompt import SoftPromptOptions, run_softprompt
from promptlab.methods.token_finetune import TokenFinetuneOptions
from promptlab.methods.token_head import TokenHeadOptions
from promptlab.metrics.text import classification_metrics
from promptlab.backends.models import LoadedModel
from promptlab.methods.pipeline import require_labels
from promptlab.metrics.rejection import reject_below, rejection_metrics
from promptlab.data.sampling import sample_kshot


@dataclass(frozen=True)
class Method:
    run: Callable  # MethodContext -> MethodOutcome; an entity method: EntityContext -> EntityOutcome
    options: type
    description: str
    kind: str = "classification"  # the kind of task it runs on (promptlab.catalog.task.KIND_RULES)


REGISTRY: dict[str, Method] = {
    "softprompt": Method(run_softprompt, SoftPromptOptions, "prompt tuning: trainable vectors, frozen model"),
    "finetune": Method(run_finetune, FinetuneOptions, "prompt-based fine-tuning of all weights (LM-BFF)"),
    "lora": Method(run_lora, LoraOptions, "prompt-based fine-tuning of LoRA adapters (peft), frozen model"),
    "finetune-head": Method(run_finetune_head, FinetuneHeadOptions,
                            "standard fine-tuning with a linear classification head"),
    "icl": Method(run_icl, ICLOptions, "in-context demonstrations, causal models only"),
    "head": Method(run_head, HeadOptions, "logistic regression on frozen sentence features"),
    "setfit": Method(run_setfit, SetFitOptions, "contrastive fine-tuning of a sentence encoder, then the head"),
    "majority": Method(run_majority, MajorityOptions, "the most frequent training label"),
    "token-finetune": Method(run_token_finetune, TokenFinetuneOptions,
                             "fine-tuning with a token-classification head (BERT NER)", kind="entities"),
    "token-head": Method(run_token_head, TokenHeadOptions,
                         "logistic-regression tagger on frozen token features, IOB2-valid decoding", kind="entities"),
    "entity-prompt": Method(run_entity_prompt, EntityPromptOptions,
                            "candidate spans typed with a template and verbalizer; soft prompt few-shot",
                            kind="entities"),
}
METHODS = tuple(REGISTRY)
DEFAULT_OPTIONS: dict[str, dict] = {name: asdict(method.options()) for name, method in REGISTRY.items()}


def methods_of(kind: str) -> tuple[str, ...]:
    """The methods that run on tasks of a kind, in registry order."""
    return tuple(name for name, method in REGISTRY.items() if method.kind == kind)


def method_options(method: str, options: dict | None = None):
    """The method's options dataclass: defaults overridden by `options`; mistakes are UserErrors."""
    if method not in REGISTRY:
        raise unknown("method", method, METHODS)
    given = dict(options or {})
    allowed = DEFAULT_OPTIONS[method]
    for name in given:
        if name not in allowed:
            raise UserError(f"method '{method}' has no option '{name}'",
                            fix=did_you_mean(name, allowed) if allowed else f"'{method}' takes no options")
    return REGISTRY[method].options(**given)  # the dataclass fills the rest (some defaults depend on others)


def uses_scoring_model(method: str, options: dict | None = None) -> bool:
    """Whether the method needs the scoring LM loaded; encoder methods bring their own model."""
    return not (method == "setfit" or (method == "head" and (options or {}).get("encoder")))


def run_method(method: str, *, setup: Setup, loaded: LoadedModel | None, train_pool: list[dict],
               test_examples: list[dict], k: int, seed: int, options: dict, save_to: str | Path | None = None,
               device: str = "auto", reject_threshold: float | None = None) -> dict:
    """Sample the k-shot split of `seed`, run one method, and score it on `test_examples`.

    With `reject_threshold`, a test example whose top label probability is below it is answered
    `out_of_scope` (methods that give no probabilities refuse it).
    """
    started = time.perf_counter()
    chosen = method_options(method, options)
    require_labels(test_examples, "the test examples")
    split = sample_kshot(train_pool, setup.task.labels, k, seed)
    context = MethodContext(setup, loaded, split, test_examples, seed, chosen, device=device,
                            unlabelled=unlabelled_rest(train_pool, split, setup.task.label_field))
    outcome = REGISTRY[method].run(context)
    labels = setup.task.labels
    gold = [example["label"] for example in test_examples]
    predicted = [labels[index] for index in outcome.predicted]
    rejection = {}
    if reject_threshold is not None:
        if outcome.probabilities is None:
            raise UserError(f"--reject-below needs label probabilities, which method '{method}' does not give",
                            fix="leave out --reject-below, or use zeroshot, head, setfit, softprompt or finetune")
        predicted = reject_below(outcome.probabilities, labels, reject_threshold)
        rejection = {"reject_below": reject_threshold, **rejection_metrics(gold, predicted)}
    metrics = {**classification_metrics(gold, predicted, labels), **rejection}  # a rejection counts as wrong
    artifact = None
    if save_to is not None and outcome.trained is not None:
        # an encoder method's artefact is tied to its encoder, even when a suite has the scoring LM loaded
        on_encoder = outcome.trained.state.get("encoder") is not None
        identity = encoder_identity(setup, outcome.trained) if on_encoder else trained_identity(setup, loaded)
        artifact = str(save_trained(save_to, outcome.trained, {
            **identity, "seed": seed, "k": k, "sample_checksum": split.checksum,
            "sample": split.describe(), "training": asdict(chosen), "train_steps": outcome.train_steps,
            "dev_accuracy": outcome.dev_accuracy, "test": {key: metrics[key] for key in ("n", "accuracy", "macro_f1")}}))
    return {"method": method, "seed": seed, "k": k, "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
            "dev_accuracy": outcome.dev_accuracy, "train_steps": outcome.train_steps,
            "seconds": round(time.perf_counter() - started, 3), **outcome.details, **rejection, "artifact": artifact,
            "options": asdict(chosen), "sample": split.describe(), "metrics": metrics,
            "predictions": [{"id": example["id"], "gold": example["label"], "predicted": label}
                            for example, label in zip(test_examples, predicted)]}


def unlabelled_rest(train_pool: list[dict], split, label_field: str) -> list[dict]:
    """The pool's examples outside the k-shot sample, their labels removed: no method can read them."""
    sampled = set(split.ids["train"]) | set(split.ids["dev"])
    return [{name: value for name, value in example.items() if name not in ("label", label_field)}
            for example in train_pool if str(example["id"]) not in sampled]


def encoder_identity(setup: Setup, trained) -> dict:
    """What an encoder method's artefact is tied to: the (base) encoder and the task's files."""
    return {"model": trained.state["encoder"], "model_kind": "encoder",
            "model_fingerprint": trained.state["encoder_fingerprint"], **setup.describe()}
