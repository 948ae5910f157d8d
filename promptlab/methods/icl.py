"""In-context learning: k-shot demonstrations in front of every prompt of a causal model, no training."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from promptlab.demonstrations import (
    SELECTIONS,
    random_choice,
    render_demonstration,
    similar_choice,
    with_demonstrations,
)
from promptlab.errors import UserError
from promptlab.features import example_text, features_of
from promptlab.methods.context import (
    MethodContext,
    MethodOutcome,
    predicted_indices,
    require_choice,
    require_positive,
)
from promptlab.pipeline import score_all
from promptlab.template import Prompt
from promptlab.train import evaluate
from promptlab.verbalizer import AGGREGATIONS


@dataclass
class ICLOptions:
    selection: str = "random"  # random | similar
    per_class: int = 4  # demonstrations of each label per prompt (at most k)
    separator: str = "\n\n"
    aggregate: str = "logsumexp"

    def __post_init__(self):
        require_choice("selection", self.selection, SELECTIONS)
        require_positive("per_class", self.per_class)
        require_choice("aggregate", self.aggregate, AGGREGATIONS)


def run_icl(context: MethodContext) -> MethodOutcome:
    loaded = context.loaded
    if loaded.kind != "causal":
        raise UserError(f"icl needs a causal model; '{loaded.name}' is a masked LM",
                        fix="pass --model with a causal LM (e.g. smollm2-135m), or another --method")
    options: ICLOptions = context.options
    scorer = context.scorer(aggregate=options.aggregate)
    dev_prompts = _prompts_with_demonstrations(context, context.split.dev, "dev")
    dev_accuracy, _ = evaluate(scorer.label_logprobs, dev_prompts, context.gold(context.split.dev))
    with torch.inference_mode():
        test_prompts = _prompts_with_demonstrations(context, context.test_examples, "test")
        test_logprobs = score_all(scorer, test_prompts, len(context.labels))
    return MethodOutcome(predicted_indices(test_logprobs), dev_accuracy,
                         details={"demonstrations_per_prompt": _per_class(context) * len(context.labels)})


def _prompts_with_demonstrations(context: MethodContext, examples: Sequence[dict], purpose: str) -> list[Prompt]:
    options: ICLOptions = context.options
    setup, train = context.setup, context.split.train
    demonstrations = [render_demonstration(setup.template, setup.verbalizer, example) for example in train]
    train_labels = [example["label"] for example in train]
    if options.selection == "random":
        chosen = random_choice(train_labels, context.labels, _per_class(context), len(examples),
                               seed=f"{purpose}-{context.seed}")
    else:
        chosen = similar_choice(_features(context, train), _features(context, examples), train_labels,
                                context.labels, _per_class(context))
    return [with_demonstrations(prompt, [demonstrations[i] for i in rows], options.separator)
            for prompt, rows in zip(context.prompts(examples), chosen)]


def _per_class(context: MethodContext) -> int:
    return min(context.options.per_class, len(context.split.train) // len(context.labels))


def _features(context: MethodContext, examples: Sequence[dict]) -> torch.Tensor:
    loaded = context.loaded
    texts = [example_text(context.setup.template, example) for example in examples]
    return features_of(loaded.model, loaded.tokenizer, texts, loaded.device)
