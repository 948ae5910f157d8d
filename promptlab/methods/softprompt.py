"""Prompt tuning: train n prompt vectors in front of a frozen model, through the zero-shot scoring path.

    SoftPrompt()  -> [n, hidden]   the vectors the backend writes after the leading special tokens

Initialisation copies rows of the model's embedding table, so training starts from real words at the
right scale: tokens sampled from the frequent part of the vocabulary (`vocab`, Lester et al.), the
tokens of a text (`text`), or the tokens of the label words (`labels`). With `reparameterize="mlp"`
(P-tuning) the vectors pass through a residual two-layer MLP whose last layer starts at zero, so the
prompt starts exactly at its initialisation either way.

A trained prompt is saved as a trained artefact (promptlab.methods.artefacts) holding one tensor,
`prompt_embeddings` (PEFT's name): the vectors after the encoder.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from promptlab.methods.artefacts import Trained
from promptlab.errors import UserError
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
from promptlab.methods.pipeline import score_all
from promptlab.methods.training import TrainResult, frozen, train
from promptlab.catalog.verbalizer import AGGREGATIONS

INITS = ("vocab", "text", "labels")
REPARAMETERIZATIONS = ("none", "mlp")
TENSOR_NAME = "prompt_embeddings"  # PEFT's name for the same tensor
_FREQUENT_VOCABULARY = 5000  # BPE ids are roughly in merge (frequency) order; rare pieces make poor starts


class SoftPrompt(torch.nn.Module):
    """Trainable prompt vectors, optionally reparameterised by an MLP (P-tuning)."""

    def __init__(self, initial: torch.Tensor, *, reparameterize: str = "none"):
        super().__init__()
        if reparameterize not in REPARAMETERIZATIONS:
            raise ValueError(f"reparameterize must be one of {REPARAMETERIZATIONS}, got {reparameterize!r}")
        self.embeddings = torch.nn.Parameter(initial.detach().clone().float())  # [n, hidden]
        self.encoder = _residual_mlp(initial.shape[1]) if reparameterize == "mlp" else None

    def forward(self) -> torch.Tensor:
        if self.encoder is None:
            return self.embeddings
        return self.embeddings + self.encoder(self.embeddings)


def _residual_mlp(hidden: int) -> torch.nn.Sequential:
    mlp = torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, hidden))
    torch.nn.init.zeros_(mlp[2].weight)
    torch.nn.init.zeros_(mlp[2].bias)
    return mlp


# ---------------------------------------------------------------- initialisation

def initial_embeddings(model: torch.nn.Module, tokenizer, *, length: int, init: str, seed: int,
                       text: str = "", label_words: list[str] = ()) -> torch.Tensor:
    """[length, hidden] rows of the model's input embedding table, chosen by `init`."""
    if length < 1:
        raise UserError(f"the prompt length must be at least 1, got {length}", fix="pass --prompt-length 8, say")
    table = model.get_input_embeddings().weight.detach()
    ids = _init_token_ids(tokenizer, init=init, length=length, seed=seed, text=text, label_words=label_words,
                          vocabulary=table.shape[0])
    return table[torch.tensor(ids, device=table.device)].float().cpu().clone()


def _init_token_ids(tokenizer, *, init: str, length: int, seed: int, text: str, label_words,
                    vocabulary: int) -> list[int]:
    if init == "vocab":
        special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}))
        candidates = [i for i in range(min(vocabulary, _FREQUENT_VOCABULARY)) if i not in special]
        generator = torch.Generator().manual_seed(seed)
        return [candidates[i] for i in torch.randint(len(candidates), (length,), generator=generator).tolist()]
    if init == "text":
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] if text.strip() else []
        if not ids:
            raise UserError("prompt init 'text' needs a text to start from", fix="set the option init_text, e.g. "
                            "'Classify the sentiment of this review.'")
        return _cycle(ids, length)
    if init == "labels":
        per_word = [tokenizer(" " + word.strip(), add_special_tokens=False)["input_ids"] for word in label_words]
        return _cycle([token for ids in per_word for token in ids], length)
    raise UserError(f"unknown prompt init '{init}'", fix="choose one of: " + ", ".join(INITS))


def _cycle(ids: list[int], length: int) -> list[int]:
    """Repeat (or cut) ids to exactly `length`, as PEFT does for text initialisation."""
    return [ids[i % len(ids)] for i in range(length)]


# ---------------------------------------------------------------- the method

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
