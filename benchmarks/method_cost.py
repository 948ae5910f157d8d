"""What each trained method costs: trainable parameters, seconds per training step, peak memory.

    python benchmarks/method_cost.py [--model smollm2-135m] [--steps 4] [--batch-size 16]
                                     [--methods softprompt,lora,finetune,finetune-head] [--dtype auto]

Each method runs in its own process (peak resident memory only grows within one) through its entry
in promptlab.methods.REGISTRY: MR, k = 16 (32 training examples), the same `--batch-size` for every
method, `--steps` optimizer steps, a 2-example dev set and 2 test examples (so evaluation barely
counts). Reported per method, side by side: trainable parameters, the mean time of a training step
(the loop's own measure: forward, backward, clipping, AdamW; dev evaluation excluded), and the peak
resident memory above what the process held with the model loaded (the model's copy for finetune and
lora, gradients, optimizer state, activations). Ratios are against finetune.

Beside each step, in the same process after the method: a bare forward and backward of the same
batch (the first `--batch-size` training prompts, the text before the answer slot, left-padded, a
cross-entropy on the last position's logits, backward to the input embeddings through every layer,
in the same precision and attention kernel as training; benchmarks/fewshot_step.py's bare pass),
the median of `--steps` repeats. `step / bare` is what a method pays beyond the model's own forward
and backward: the label words it reads, weight gradients, the optimizer.
"""
from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys

import click
import torch

from promptlab.backends.aliases import DEFAULT_MODEL


@click.command()
@click.option("--model", default=DEFAULT_MODEL)
@click.option("--steps", default=4, show_default=True)
@click.option("--batch-size", default=16, show_default=True)
@click.option("--methods", default="softprompt,lora,finetune,finetune-head", show_default=True)
@click.option("--dtype", default="auto", show_default=True)
@click.option("--one", default=None, hidden=True, help="Measure this method in this process (internal).")
def main(model, steps, batch_size, methods, dtype, one):
    if one:
        print(json.dumps(_measure(one, model, steps, batch_size, dtype)))
        return
    rows = {}
    for method in methods.split(","):
        output = subprocess.run([sys.executable, __file__, "--model", model, "--steps", str(steps),
                                 "--batch-size", str(batch_size), "--dtype", dtype, "--one", method],
                                check=True, capture_output=True, text=True).stdout
        rows[method] = json.loads(output.strip().splitlines()[-1])
    reference = rows.get("finetune")
    for row in rows.values():
        if reference:
            for key in ("trainable_parameters", "seconds_per_step", "peak_memory_mb"):
                row[f"{key}_vs_finetune"] = round(row[key] / reference[key], 4)
    print(json.dumps({"model": model, "steps": steps, "batch_size": batch_size, "threads": torch.get_num_threads(),
                      "methods": rows}, indent=2))
    print(f"{'method':<16}{'trainable':>14}{'s/step':>9}{'bare s':>9}{'step / bare':>13}{'peak MB':>10}")
    for method, row in rows.items():
        print(f"{method:<16}{row['trainable_parameters']:>14,}{row['seconds_per_step']:>9.2f}{row['bare_s']:>9.2f}"
              f"{row['seconds_per_step'] / row['bare_s']:>13.2f}{row['peak_memory_mb']:>10.0f}")


def _measure(method: str, model: str, steps: int, batch_size: int, dtype: str) -> dict:
    from dataclasses import replace

    from promptlab.catalog.catalog import Catalog, Setup
    from promptlab.kinds import task_examples
    from promptlab.methods import REGISTRY, method_options
    from promptlab.methods.context import MethodContext
    from promptlab.backends.models import load_model
    from promptlab.data.sampling import sample_kshot

    setup = Setup.load(Catalog.from_options(), "sentiment", "t1")
    loaded = load_model(model, device="cpu", dtype=dtype)
    baseline_mb = _peak_rss_mb()
    split = sample_kshot(task_examples(setup.task, "train"), setup.task.labels, 16, seed=13)
    split = replace(split, dev=split.dev[:1] + split.dev[-1:])  # one per class: evaluation barely counts
    options = method_options(method, {"steps": steps, "eval_every": steps, "patience": 0, "batch_size": batch_size})
    context = MethodContext(setup, loaded, split, task_examples(setup.task, "test", limit=2), 13, options)
    outcome = REGISTRY[method].run(context)
    peak_mb = _peak_rss_mb() - baseline_mb
    hidden = loaded.model.config.hidden_size
    weights = sum(p.numel() for p in loaded.model.parameters())
    trainable = {"softprompt": options.prompt_length * hidden, "finetune": weights,
                 "finetune-head": weights + (hidden + 1) * len(setup.task.labels)}.get(method)
    if trainable is None:  # lora counts its adapters
        trainable = outcome.details["trainable_parameters"]
    return {"trainable_parameters": trainable, "seconds_per_step": outcome.details["seconds_per_step"],
            "bare_s": _bare_seconds(loaded, context, batch_size, steps), "dtype": loaded.dtype,
            "peak_memory_mb": round(peak_mb, 1), "model_loaded_mb": round(baseline_mb, 1)}


def _bare_seconds(loaded, context, batch_size: int, repeats: int) -> float:
    """fewshot_step's bare forward and backward on the method's first batch, as training runs it."""
    from fewshot_step import _bare_step  # beside this script

    from promptlab.backends.attention import attention_for_gradients
    from promptlab.methods.softprompt import SoftPrompt, initial_embeddings
    from promptlab.methods.training import autocast, frozen

    prompts = context.prompts(context.split.train)[:batch_size]
    gold = context.gold(context.split.train)[:batch_size]
    soft = SoftPrompt(initial_embeddings(loaded.model, loaded.tokenizer, length=8, init="vocab", seed=13))
    config = context.train_config()
    with frozen(loaded.model), autocast(config.device_type, config.precision), attention_for_gradients(loaded.model):
        return round(statistics.median(_bare_step(loaded, prompts, gold, soft) for _ in range(repeats)), 3)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


if __name__ == "__main__":
    main()
