"""Start-up, side by side: how long a command takes before its first answer.

    python benchmarks/startup.py [--model smollm2-135m] [--task sentiment] [--rounds 3] [--output FILE]

Each round runs, one after another, each in its own process:

- floor: `python -c "import torch, transformers"` and the model read by transformers alone
  (`AutoModelForCausalLM.from_pretrained` of the same cached folder, in the same dtype): what any
  tool that scores with this model pays before its first forward;
- zeroshot, time to first batch: `promptlab zeroshot --task T --template t1 --limit 1` from process
  start to exit (imports, catalog, model load, the calibration prior, one example scored);
- serve, ready: `promptlab serve --task T` from process start until GET /health answers, and until
  the first POST /classify of one text has its answer.

Reported: the median of `--rounds` per measurement, and the 1-minute load average at the start.
The machine may be shared: compare the rows of one run, never numbers across runs.
"""
from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import click

FLOOR = """
import sys, torch, transformers
from promptlab.backends.models import resolve_dtype, resolve_model
source, _ = resolve_model(sys.argv[1])
transformers.AutoModelForCausalLM.from_pretrained(source, dtype=resolve_dtype(None, torch.device("cpu")))
"""


def _wall(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(url: str, body: bytes | None = None) -> bool:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status == 200
    except OSError:
        return False


def serve_ready(task: str, model: str, text: str) -> tuple[float, float]:
    """Seconds from process start to /health answering, and to the first classification's answer."""
    port = _free_port()
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "promptlab", "serve", "--task", task, "--model", model,
                               "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not _answers(f"http://127.0.0.1:{port}/health"):
            if server.poll() is not None:
                raise click.ClickException("serve exited before answering /health")
            time.sleep(0.05)
        ready = time.perf_counter() - started
        _answers(f"http://127.0.0.1:{port}/classify", json.dumps({"inputs": [{"text": text}]}).encode())
        return ready, time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=60)


@click.command()
@click.option("--model", default="smollm2-135m", show_default=True)
@click.option("--task", default="sentiment", show_default=True)
@click.option("--rounds", default=3, show_default=True)
@click.option("--output", type=click.Path(dir_okay=False), default=None)
def main(model, task, rounds, output):
    from promptlab.catalog.catalog import Catalog
    from promptlab.kinds import task_examples

    text = task_examples(Catalog.from_options().task(task), "test", limit=1)[0]["text"]
    runs = []
    for _ in range(rounds):
        load = os.getloadavg()[0]
        floor = _wall([sys.executable, "-c", FLOOR, model])
        first_batch = _wall([sys.executable, "-m", "promptlab", "zeroshot", "--task", task, "--template", "t1",
                             "--model", model, "--limit", "1", "--json"])
        ready, first_answer = serve_ready(task, model, text)
        runs.append({"load": round(load, 1), "import_and_load_model_s": round(floor, 2),
                     "zeroshot_first_batch_s": round(first_batch, 2), "serve_ready_s": round(ready, 2),
                     "serve_first_answer_s": round(first_answer, 2)})
        if output:
            Path(output).write_text(json.dumps({"model": model, "task": task, "runs": runs}, indent=2))
    for key in runs[0]:
        click.echo(f"{key:<28}{statistics.median(run[key] for run in runs):>8.2f}")


if __name__ == "__main__":
    main()
