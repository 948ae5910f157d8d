"""Fine-tuning every weight of a copy of the model: prompt-based (LM-BFF) or with a classification head.

`finetune` trains the same cloze / label-word objective that zero-shot scores with, so it starts
from the zero-shot classifier. `finetune-head` is the standard baseline: a new linear head on
mean-pooled hidden states of the example's text, no template. Both work on a deep copy, so the
shared model is untouched.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from promptlab.methods.artefacts import Trained
from promptlab.backends.features import example_text, pooled_features
from promptlab.methods.context import (
    EVAL_BATCH,
    MethodContext,
    MethodOutcome,
    TrainingOptions,
    predicted_indices,
    require_choice,
    training_details,
)
from promptlab.backends.models import LoadedModel, float32_copy
from promptlab.methods.pipeline import score_all
from promptlab.backends.scoring import LabelScorer
from promptlab.methods.training import TrainResult, train
from promptlab.catalog.verbalizer import AGGREGATIONS


@dataclass
class FinetuneOptions(TrainingOptions):
    steps: int = 30
    lr: float = 1e-5
    batch_size: int = 16
    eval_every: int = 5
    patience: int = 3
    weight_decay: float = 0.0
    aggregate: str = "logsumexp"

    def __post_init__(self):
        super().__post_init__()
        require_choice("aggregate", self.aggregate, AGGREGATIONS)


@dataclass
class FinetuneHeadOptions(TrainingOptions):
    steps: int = 30
    lr: float = 1e-4
    batch_size: int = 16
    eval_every: int = 5
    patience: int = 3
    weight_decay: float = 0.0


def run_finetune(context: MethodContext) -> MethodOutcome:
    model = trainable_copy(context.loaded)
    scorer, result = train_cloze(context, model, model, description=f"finetune seed {context.seed}")
    test_scorer = context.scorer(as_loaded_dtype(model, context.loaded), aggregate=context.options.aggregate,
                                 batch_size=scorer.batch_size)
    outcome = cloze_outcome(context, test_scorer, result)
    outcome.trained = Trained("finetune", model=model, tokenizer=context.loaded.tokenizer,
                              scoring={"calibrate": "none", "aggregate": context.options.aggregate})
    return outcome


def train_cloze(context: MethodContext, model: torch.nn.Module, trainable: torch.nn.Module, *,
                description: str) -> tuple[LabelScorer, TrainResult]:
    """Train `trainable`'s parameters that require grad on the label-word objective, scoring with `model`.

    The zero-shot scoring path, uncalibrated (training learns the bias); the dev set picks the step.
    `finetune` trains every weight, `lora` its adapters, continual strategies one task after another.
    """
    options = context.options  # FinetuneOptions or a subclass
    split = context.split
    scorer = context.scorer(model, aggregate=options.aggregate, batch_size=max(options.batch_size, EVAL_BATCH))
    result = train(trainable, scorer.label_logprobs, context.prompts(split.train), context.gold(split.train),
                   context.prompts(split.dev), context.gold(split.dev), context.train_config(),
                   description=description)
    return scorer, result


def cloze_outcome(context: MethodContext, scorer: LabelScorer, result: TrainResult) -> MethodOutcome:
    """The trained scorer's predictions on the test examples."""
    with torch.inference_mode():
        test_logprobs = score_all(scorer, context.prompts(context.test_examples), len(context.labels))
    return MethodOutcome(predicted_indices(test_logprobs), result.best_dev_accuracy, result.steps,
                         training_details(result), probabilities=test_logprobs.exp().tolist())


def run_finetune_head(context: MethodContext) -> MethodOutcome:
    loaded, split, template = context.loaded, context.split, context.setup.template
    model = trainable_copy(loaded)
    torch.manual_seed(context.seed)
    head = torch.nn.Linear(model.config.hidden_size, len(context.labels)).to(loaded.device)
    module = torch.nn.ModuleDict({"model": model, "head": head})

    def label_logprobs(texts):
        return head(pooled_features(model, loaded.tokenizer, texts, loaded.device)).float().log_softmax(-1)

    def texts(examples):
        return [example_text(template, example) for example in examples]

    result = train(module, label_logprobs, texts(split.train), context.gold(split.train), texts(split.dev),
                   context.gold(split.dev), context.train_config(),
                   description=f"finetune-head seed {context.seed}")
    scoring_model = as_loaded_dtype(model, loaded)

    def test_logprobs_of(texts):  # as the saved artefact scores: features in the loaded dtype, the head in float64
        features = pooled_features(scoring_model, loaded.tokenizer, texts, loaded.device).double()
        return torch.nn.functional.linear(features, head.weight.double(), head.bias.double()).float().log_softmax(-1)

    test_texts = texts(context.test_examples)
    with torch.inference_mode():
        test_logprobs = torch.cat([test_logprobs_of(test_texts[start:start + EVAL_BATCH]).cpu()
                                   for start in range(0, len(test_texts), EVAL_BATCH)])
    trained = Trained("finetune-head", model=model, tokenizer=loaded.tokenizer,
                      tensors={"head.weight": head.weight, "head.bias": head.bias})
    return MethodOutcome(predicted_indices(test_logprobs), result.best_dev_accuracy, result.steps,
                         training_details(result), trained, probabilities=test_logprobs.exp().tolist())


def as_loaded_dtype(model: torch.nn.Module, loaded: LoadedModel) -> torch.nn.Module:
    """The trained float32 weights as the saved artefact loads with the same --dtype: the body in the loaded
    dtype and, where the loaded model scores through a float32 head (a half-precision body on the CPU:
    promptlab.backends.models.load_model), the trained head in float32. Test predictions are then exactly
    those the artefact reproduces."""
    if model.dtype == loaded.model.dtype:
        return model
    scoring = copy.deepcopy(model).to(loaded.model.dtype)
    loaded_head = loaded.model.get_output_embeddings()
    if isinstance(loaded_head, torch.nn.Linear) and loaded_head.weight.dtype == torch.float32:
        head = copy.deepcopy(model.get_output_embeddings()).float().requires_grad_(False)
        head.register_forward_pre_hook(lambda _module, inputs: tuple(tensor.float() for tensor in inputs))
        scoring.set_output_embeddings(head)
    return scoring


def trainable_copy(loaded: LoadedModel) -> torch.nn.Module:
    """A float32 copy with every weight trainable (master weights: the forwards run in the loaded dtype
    under autocast); eval mode keeps dropout off, so same seed, same numbers."""
    return float32_copy(loaded).requires_grad_(True)
