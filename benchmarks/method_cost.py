"""What each trained method costs: trainable parameters, seconds per training step, peak memory.

    python benchmarks/method_cost.py [--model smollm2-135m] [--steps 6] [--methods softprompt,lora,finetune]

Each method runs in its own process (peak resident memory only grows within one) through
promptlab.methods.run_method: MR, k = 16 (32 training examples), batches of 16 for every method,
`--steps` optimizer steps, no early stopping, 8 test examples. Reported per method, side by side:
trainable parameters, the mean time of a training step (the loop's own measure: forward, backward,
clipping, AdamW; dev evaluation excluded), and the peak resident memory above what the process held
with the model loaded (the model's copy for finetune and lora, gradients, optimizer state,
activations). Ratios are against finetune.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys

import click
import torch

from promptlab.aliases import DEFAULT_MODEL


@click.command()
@click.option("--model", default=DEFAULT_MODEL)
@click.option("--steps", default=6, show_default=True)
@click.option("--methods", default="softprompt,lora,finetune", show_default=True)
@click.option("--one", default=None, hidden=True, help="Measure this method in this process (internal).")
def main(model, steps, methods, one):
    if one:
        print(json.dumps(_measure(one, model, steps)))
        return
    rows = {}
    for method in methods.split(","):
        output = subprocess.run([sys.executable, __file__, "--model", model, "--steps", str(steps), "--one", method],
                                check=True, capture_output=True, text=True).stdout
        rows[method] = json.loads(output.strip().splitlines()[-1])
    reference = rows.get("finetune")
    for row in rows.values():
        if reference:
            for key in ("trainable_parameters", "seconds_per_step", "peak_memory_mb"):
                row[f"{key}_vs_finetune"] = round(row[key] / reference[key], 4)
    print(json.dumps({"model": model, "steps": steps, "threads": torch.get_num_threads(), "methods": rows}, indent=2))


def _measure(method: str, model: str, steps: int) -> dict:
    from promptlab.catalog import Catalog, Setup
    from promptlab.methods import run_method
    from promptlab.models import load_model

    setup = Setup.load(Catalog.from_options(), "sentiment", "t1")
    loaded = load_model(model, device="cpu")
    baseline_mb = _peak_rss_mb()
    options = {"steps": steps, "eval_every": steps, "patience": 0, "batch_size": 16}
    result = run_method(method, setup=setup, loaded=loaded, train_pool=setup.task.examples("train"),
                        test_examples=setup.task.examples("test", limit=8), k=16, seed=13, options=options)
    hidden = loaded.model.config.hidden_size
    trainable = {"softprompt": result["options"].get("prompt_length", 0) * hidden,
                 "finetune": sum(p.numel() for p in loaded.model.parameters())}.get(method)
    return {"trainable_parameters": result.get("trainable_parameters", trainable),
            "batch_size": result["options"]["batch_size"], "seconds_per_step": result["seconds_per_step"],
            "peak_memory_mb": round(_peak_rss_mb() - baseline_mb, 1), "model_loaded_mb": round(baseline_mb, 1)}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


if __name__ == "__main__":
    main()
