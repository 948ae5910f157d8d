"""What each trained method costs: trainable parameters, seconds per training step, peak memory.

    python benchmarks/method_cost.py [--model smollm2-135m] [--steps 4] [--batch-size 16] [--methods softprompt,lora,finetune]

Each method runs in its own process (peak resident memory only grows within one) through its entry
in promptlab.methods.REGISTRY: MR, k = 16 (32 training examples), the same `--batch-size` for every
method, `--steps` optimizer steps, a 2-example dev set and 2 test examples (so evaluation barely
counts). Reported per method, side by side: trainable parameters, the mean time of a training step
(the loop's own measure: forward, backward, clipping, AdamW; dev evaluation excluded), and the peak
resident memory above what the process held with the model loaded (the model's copy for finetune and
lora, gradients, optimizer state, activations). Ratios are against finetune.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys

import click
import torch

from promptlab.backends.aliases import DEFAULT_MODEL


@click.command()
@click.option("--model", default=DEFAULT_MODEL)
@click.option("--steps", default=4, show_default=True)
@click.option("--batch-size", default=16, show_default=True)
@click.option("--methods", default="softprompt,lora,finetune", show_default=True)
@click.option("--one", default=None, hidden=True, help="Measure this method in this process (internal).")
def main(model, steps, batch_size, methods, one):
    if one:
        print(json.dumps(_measure(one, model, steps, batch_size)))
        return
    rows = {}
    for method in methods.split(","):
        output = subprocess.run([sys.executable, __file__, "--model", model, "--steps", str(steps),
                                 "--batch-size", str(batch_size), "--one", method],
                                check=True, capture_output=True, text=True).stdout
        rows[method] = json.loads(output.strip().splitlines()[-1])
    reference = rows.get("finetune")
    for row in rows.values():
        if reference:
            for key in ("trainable_parameters", "seconds_per_step", "peak_memory_mb"):
                row[f"{key}_vs_finetune"] = round(row[key] / reference[key], 4)
    print(json.dumps({"model": model, "steps": steps, "batch_size": batch_size, "threads": torch.get_num_threads(), "methods": rows}, indent=2))


def _measure(method: str, model: str, steps: int, batch_size: int) -> dict:
    from dataclasses import replace

    from promptlab.catalog.catalog import Catalog, Setup
    from promptlab.kinds import task_examples
    from promptlab.methods import REGISTRY, method_options
    from promptlab.methods.context import MethodContext
    from promptlab.backends.models import load_model
    from promptlab.data.sampling import sample_kshot

    setup = Setup.load(Catalog.from_options(), "sentiment", "t1")
    loaded = load_model(model, device="cpu")
    baseline_mb = _peak_rss_mb()
    split = sample_kshot(task_examples(setup.task, "train"), setup.task.labels, 16, seed=13)
    split = replace(split, dev=split.dev[:1] + split.dev[-1:])  # one per class: evaluation barely counts
    options = method_options(method, {"steps": steps, "eval_every": steps, "patience": 0, "batch_size": batch_size})
    context = MethodContext(setup, loaded, split, task_examples(setup.task, "test", limit=2), 13, options)
    outcome = REGISTRY[method].run(context)
    if method == "softprompt":
        trainable = options.prompt_length * loaded.model.config.hidden_size
    elif method == "finetune":
        trainable = sum(p.numel() for p in loaded.model.parameters())
    else:  # lora counts its adapters
        trainable = outcome.details["trainable_parameters"]
    return {"trainable_parameters": trainable,
            "seconds_per_step": outcome.details["seconds_per_step"],
            "peak_memory_mb": round(_peak_rss_mb() - baseline_mb, 1), "model_loaded_mb": round(baseline_mb, 1)}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


if __name__ == "__main__":
    main()
