"""Seconds per soft-prompt training step against a bare forward+backward of the same batch.

    python benchmarks/fewshot_step.py [--model smollm2-135m] [--k 16] [--repeats 5]

The step is what promptlab.train runs (scoring path, loss, backward, clipping, AdamW); the bare
pass feeds the same token ids and soft prompt straight into the model and backpropagates a
cross-entropy on the last position's logits. The difference is the overhead of the scoring path.
"""
from __future__ import annotations

import json
import statistics
import time

import click
import torch

from promptlab.aliases import DEFAULT_MODEL
from promptlab.backends import make_backend
from promptlab.backends.inputs import pad
from promptlab.template import split_trailing_space
from promptlab.catalog import Catalog, Setup
from promptlab.models import load_model
from promptlab.pipeline import render_all
from promptlab.sampling import sample_kshot
from promptlab.scoring import LabelScorer
from promptlab.softprompt import SoftPrompt, initial_embeddings
from promptlab.train import TrainConfig, frozen, train


@click.command()
@click.option("--model", default=DEFAULT_MODEL)
@click.option("--task", default="sentiment")
@click.option("--template", default="t1")
@click.option("--k", default=16)
@click.option("--prompt-length", default=8)
@click.option("--repeats", default=5)
def main(model, task, template, k, prompt_length, repeats):
    setup = Setup.load(Catalog.from_options(), task, template)
    loaded = load_model(model, device="cpu")
    split = sample_kshot(setup.task.examples("train"), setup.task.labels, k, seed=13)
    prompts = render_all(setup.template, split.train)
    gold = [setup.task.labels.index(example["label"]) for example in split.train]
    soft = SoftPrompt(initial_embeddings(loaded.model, loaded.tokenizer, length=prompt_length, init="vocab", seed=13))
    scorer = LabelScorer(make_backend(loaded.model, loaded.tokenizer, loaded.kind, loaded.device), setup.template,
                         setup.verbalizer, batch_size=len(prompts))

    def label_logprobs(batch):
        scorer.soft_prompt = soft()
        return scorer.label_logprobs(batch)

    with frozen(loaded.model):
        bare = [_bare_step(loaded, prompts, gold, soft) for _ in range(repeats)]
        result = train(soft, label_logprobs, prompts, gold, [], [], TrainConfig(
            steps=repeats, lr=0.01, batch_size=len(prompts), eval_every=repeats, patience=0))
    tokens = sum(scorer.backend.prompt_length(prompt) for prompt in prompts) / len(prompts)
    print(json.dumps({"model": model, "batch": len(prompts), "mean_prompt_tokens": round(tokens, 1),
                      "prompt_length": prompt_length, "threads": torch.get_num_threads(),
                      "bare_forward_backward_s": round(statistics.median(bare), 3),
                      "train_step_s": round(result.seconds_per_step, 3),
                      "train_step_over_bare": round(result.seconds_per_step / statistics.median(bare), 2)}))


def _bare_step(loaded, prompts, gold, soft) -> float:
    """Causal LMs only: the same left-padded ids with the prompt vectors in front, one backward."""
    tokenizer, model = loaded.tokenizer, loaded.model
    rows = [tokenizer(split_trailing_space(prompt.before)[0], add_special_tokens=False)["input_ids"]
            for prompt in prompts]
    ids, mask = pad(rows, tokenizer.pad_token_id, left=True)
    started = time.perf_counter()
    vectors = soft()
    embeddings = model.get_input_embeddings()(ids)
    embeddings = torch.cat([vectors.unsqueeze(0).expand(len(rows), -1, -1), embeddings], dim=1)
    mask = torch.cat([torch.ones(len(rows), vectors.shape[0], dtype=mask.dtype), mask], dim=1)
    logits = model(inputs_embeds=embeddings, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0),
                   logits_to_keep=1).logits[:, -1]
    torch.nn.functional.cross_entropy(logits, torch.tensor(gold)).backward()
    soft.zero_grad()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
