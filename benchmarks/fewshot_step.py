"""Seconds per soft-prompt training step against a bare forward+backward of the same batch.

    python benchmarks/fewshot_step.py [--model smollm2-135m] [--k 16] [--repeats 5] [--dtype auto]

The step is what promptlab.methods.training runs (scoring path, loss, backward, clipping, AdamW); the bare
pass feeds the same token ids and soft prompt straight into the model and backpropagates a
cross-entropy on the last position's logits. The difference is the overhead of the scoring path.
Both run in the precision `--dtype` picks (as `promptlab fewshot --dtype` does: weights in that
dtype, forwards under its autocast, the prompt vectors in float32).
"""
from __future__ import annotations

import json
import statistics
import time

import click
import torch

from promptlab.backends.aliases import DEFAULT_MODEL
from promptlab.backends import make_backend
from promptlab.backends.inputs import pad
from promptlab.catalog.template import split_trailing_space
from promptlab.catalog.catalog import Catalog, Setup
from promptlab.backends.models import load_model
from promptlab.methods.pipeline import render_all
from promptlab.data.sampling import sample_kshot
from promptlab.backends.scoring import LabelScorer
from promptlab.methods.softprompt import SoftPrompt, initial_embeddings
from promptlab.methods.training import TrainConfig, autocast, frozen, train
from promptlab.kinds import task_examples


@click.command()
@click.option("--model", default=DEFAULT_MODEL)
@click.option("--task", default="sentiment")
@click.option("--template", default="t1")
@click.option("--k", default=16)
@click.option("--prompt-length", default=8)
@click.option("--repeats", default=5)
@click.option("--dtype", default="auto", show_default=True)
@click.option("--device", default="cpu", show_default=True)
def main(model, task, template, k, prompt_length, repeats, dtype, device):
    setup = Setup.load(Catalog.from_options(), task, template)
    loaded = load_model(model, device=device, dtype=dtype)
    precision = {"precision": loaded.model.dtype, "device_type": loaded.device.type}
    split = sample_kshot(task_examples(setup.task, "train"), setup.task.labels, k, seed=13)
    prompts = render_all(setup.template, split.train)
    gold = [setup.task.labels.index(example["label"]) for example in split.train]
    soft = SoftPrompt(initial_embeddings(loaded.model, loaded.tokenizer, length=prompt_length, init="vocab",
                                         seed=13)).to(loaded.device)
    scorer = LabelScorer(make_backend(loaded.model, loaded.tokenizer, loaded.kind, loaded.device), setup.template,
                         setup.verbalizer, batch_size=len(prompts))

    def label_logprobs(batch):
        scorer.soft_prompt = soft()
        return scorer.label_logprobs(batch)

    with frozen(loaded.model):
        with autocast(**precision):
            bare = [_bare_step(loaded, prompts, gold, soft) for _ in range(repeats)]
        result = train(soft, label_logprobs, prompts, gold, [], [], TrainConfig(
            steps=repeats, lr=0.01, batch_size=len(prompts), eval_every=repeats, patience=0, **precision))
    tokens = sum(scorer.backend.prompt_length(prompt) for prompt in prompts) / len(prompts)
    print(json.dumps({"model": model, "dtype": loaded.dtype, "batch": len(prompts), "mean_prompt_tokens": round(tokens, 1),
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
    ids, mask = ids.to(loaded.device), mask.to(loaded.device)
    started = time.perf_counter()
    vectors = soft()
    embeddings = model.get_input_embeddings()(ids)
    embeddings = torch.cat([vectors.to(embeddings.dtype).unsqueeze(0).expand(len(rows), -1, -1), embeddings], dim=1)
    mask = torch.cat([torch.ones(len(rows), vectors.shape[0], dtype=mask.dtype, device=mask.device), mask], dim=1)
    last = torch.tensor([embeddings.shape[1] - 1], device=embeddings.device)  # an index keeps the slice contiguous
    logits = model(inputs_embeds=embeddings, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0),
                   logits_to_keep=last).logits[:, -1]
    torch.nn.functional.cross_entropy(logits.float(), torch.tensor(gold, device=logits.device)).backward()
    soft.zero_grad()
    if loaded.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
