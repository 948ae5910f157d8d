"""Prompt tuning: train n prompt vectors in front of a frozen model, through the zero-shot scoring path."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from promptlab.apply.artefacts import Trained
from promptlab.methods.context import (
    EVAL_BATCH,
    MethodContext,
    MethodOutcome,
    TrainingOptions,
    predicted_indices,
    require_choice,
    require_positive,
    training_details,
)
from promptlab.pipeline import score_all
from promptlab.softprompt import (
    INITS,
    REPARAMETERIZATIONS,
    TENSOR_NAME,
    SoftPrompt,
    initial_embeddings,
)
from promptlab.train import TrainResult, frozen, train
from promptlab.verbalizer import AGGREGATIONS


@dataclass
class SoftPromptOptions(TrainingOptions):
    steps: int = 30
    lr: float = 0.01
    batch_size: int = 32
    eval_every: int = 5
    patience: int = 3
    weight_decay: float = 0.0
    prompt_length: int = 8
    init: str = "labels"  # vocab | text | labels
    init_text: str = ""  # the text for init "text"
    reparameterize: str = "none"  # none | mlp (P-tuning)
    aggregate: str = "logsumexp"

    def __post_init__(self):
        super().__post_init__()
        require_positive("prompt_length", self.prompt_length)
        require_choice("init", self.init, INITS)
        require_choice("reparameterize", self.reparameterize, REPARAMETERIZATIONS)
        require_choice("aggregate", self.aggregate, AGGREGATIONS)


def run_softprompt(context: MethodContext) -> MethodOutcome:
    options: SoftPromptOptions = context.options
    loaded = context.loaded
    embeddings, result = train_soft_prompt(context)
    scorer = context.scorer(aggregate=options.aggregate, batch_size=max(options.batch_size, EVAL_BATCH))
    scorer.soft_prompt = embeddings.to(loaded.device)
    with torch.inference_mode():
        test_logprobs = score_all(scorer, context.prompts(context.test_examples), len(context.labels))
    trained = Trained("softprompt", tensors={TENSOR_NAME: embeddings},
                      scoring={"calibrate": "none", "aggregate": options.aggregate})
    return MethodOutcome(predicted_indices(test_logprobs), result.best_dev_accuracy, result.steps,
                         training_details(result), trained, probabilities=test_logprobs.exp().tolist())


def train_soft_prompt(context: MethodContext, *, after: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, TrainResult]:
    """Train a prompt for the context's task on the frozen model; the kept vectors [n, hidden] on the CPU.

    `after` [m, hidden] (frozen) follows the trained vectors in every input: Progressive Prompts' earlier
    prompts. The returned vectors are the trained ones only.
    """
    options: SoftPromptOptions = context.options
    loaded, split = context.loaded, context.split
    label_words = [word for words in context.setup.verbalizer.words.values() for word in words]
    initial = initial_embeddings(loaded.model, loaded.tokenizer, length=options.prompt_length, init=options.init,
                                 seed=context.seed, text=options.init_text, label_words=label_words)
    torch.manual_seed(context.seed)  # the P-tuning encoder's initial weights
    soft_prompt = SoftPrompt(initial, reparameterize=options.reparameterize).to(loaded.device)
    scorer = context.scorer(aggregate=options.aggregate, batch_size=max(options.batch_size, EVAL_BATCH))
    frozen_tail = None if after is None else after.to(loaded.device)

    def label_logprobs(prompts):
        trained = soft_prompt()  # recomputed each call, so gradients reach the encoder too
        scorer.soft_prompt = trained if frozen_tail is None else torch.cat([trained, frozen_tail.to(trained.dtype)])
        return scorer.label_logprobs(prompts)

    with frozen(loaded.model):
        result = train(soft_prompt, label_logprobs, context.prompts(split.train), context.gold(split.train),
                       context.prompts(split.dev), context.gold(split.dev), context.train_config(),
                       description=f"softprompt seed {context.seed}")
    with torch.no_grad():
        return soft_prompt().detach().float().cpu(), result
