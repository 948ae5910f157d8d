"""The few-shot command per method, side by side: whole processes, in alternating rounds.

    python benchmarks/fewshot_methods.py [--methods softprompt,lora] [--rounds 1] [--limit 200] [--output FILE]

Each round runs `promptlab fewshot --task sentiment --template t1 --k 16 --seeds 13 --limit N
--method M --json` once per method, one after another, so a change in the machine's load hits every
method alike; each measurement records the 1-minute load average at its start. Reported per
method: wall time and CPU seconds of the whole process (start-up, model load, the zero-shot
comparison, training, dev checks, test scoring), the seed's own seconds and seconds per step, its steps, test accuracy,
the zero-shot accuracy on the same examples, and wall time against the first method. The machine
being shared, compare ratios within one run, never seconds across runs.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import click

COMMAND = ["fewshot", "--task", "sentiment", "--template", "t1", "--k", "16", "--seeds", "13"]


def run_method(method: str, limit: int, model: str, dtype: str) -> dict:
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "promptlab", *COMMAND, "--limit", str(limit), "--method", method,
                           "--model", model, "--dtype", dtype, "--json"], capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise click.ClickException(f"{method} failed:\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    seed = summary["per_seed"][0]
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime  # less swayed by the machine's load
    return {"method": method, "dtype": summary.get("dtype"), "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "seed_s": seed["seconds"], "train_steps": seed["train_steps"],
            "seconds_per_step": seed.get("seconds_per_step"), "accuracy": seed["accuracy"],
            "zero_shot_accuracy": summary.get("zero_shot_accuracy"), "load": round(load, 1)}


@click.command()
@click.option("--methods", default="softprompt,lora", show_default=True)
@click.option("--rounds", default=1, show_default=True, help="Rounds of all methods; the fastest of each is kept.")
@click.option("--limit", default=200, show_default=True, help="MR test examples.")
@click.option("--model", default="smollm2-135m", show_default=True)
@click.option("--dtype", default="auto", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="Write every run as JSON.")
def main(methods, rounds, limit, model, dtype, output):
    names = methods.split(",")
    runs = []
    for _ in range(rounds):
        for method in names:
            runs.append(run_method(method, limit, model, dtype))
            if output:  # after every run, so a stopped benchmark keeps what it measured
                Path(output).write_text(json.dumps({"command": COMMAND, "limit": limit, "runs": runs}, indent=2))
    best = {method: min((run for run in runs if run["method"] == method), key=lambda run: run["wall_s"])
            for method in names}
    first = best[names[0]]["wall_s"]
    click.echo(f"{'method':<16}{'wall s':>9}{'seed s':>9}{'s/step':>9}{'steps':>7}{'accuracy':>10}"
               f"{'zero-shot':>11}{'wall / first':>14}{'load':>7}")
    for method, run in best.items():
        click.echo(f"{method:<16}{run['wall_s']:>9.1f}{run['seed_s']:>9.1f}{run['seconds_per_step'] or 0:>9.2f}"
                   f"{run['train_steps']:>7}{run['accuracy']:>10.3f}{run['zero_shot_accuracy'] or 0:>11.3f}"
                   f"{run['wall_s'] / first:>14.2f}{run['load']:>7.1f}")


if __name__ == "__main__":
    main()
