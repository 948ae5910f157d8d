"""`promptlab serve` under load: throughput and latency of one client at a time against N at once.

    python benchmarks/serve.py [--task sentiment] [--model smollm2-135m] [--requests 160] [--clients 1,8,40]
                               [--max-batch 64] [--max-wait-ms 10] [--output FILE]

Starts `promptlab serve` on 127.0.0.1 (a free port; nothing else is contacted), waits for /health,
then for each client count C sends the same `--requests` one-text requests (the first texts of
the task's test split), C of them in flight at a time, and records each request's latency. C = 1
is one request at a time: no batching can happen, every forward holds one text. With C > 1 the
server's micro-batching puts waiting requests into one forward. Reported per C: requests/s,
p50/p99 latency, and the mean number of texts per forward (from GET /info's batch count). The
machine may be shared: compare the rows of one run, never numbers across runs.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click

REPOSITORY = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _call(url: str, body: bytes | None = None, timeout: float = 300) -> dict:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _start(arguments: list[str], port: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "promptlab", "serve", *arguments, "--host", "127.0.0.1",
                                "--port", str(port)], env={**os.environ, "PYTHONPATH": str(REPOSITORY)})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("serve exited before answering /health")
        try:
            _call(f"http://127.0.0.1:{port}/health", timeout=2)
            return process
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise SystemExit("serve did not answer /health within 300 s")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def measure(base: str, texts: list[str], clients: int) -> dict:
    def one(text: str) -> float:
        started = time.perf_counter()
        _call(f"{base}/classify", json.dumps({"inputs": [{"text": text}]}).encode())
        return time.perf_counter() - started

    batches_before = _call(f"{base}/info")["batches"]
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = list(pool.map(one, texts))
    seconds = time.perf_counter() - started
    batches = _call(f"{base}/info")["batches"] - batches_before
    return {"clients": clients, "requests": len(texts), "seconds": round(seconds, 2),
            "requests_per_second": round(len(texts) / seconds, 2),
            "p50_ms": round(1000 * statistics.median(latencies), 1),
            "p99_ms": round(1000 * _percentile(latencies, 99), 1),
            "texts_per_forward": round(len(texts) / max(batches, 1), 1)}


@click.command()
@click.option("--task", default="sentiment", show_default=True)
@click.option("--model", default="smollm2-135m", show_default=True)
@click.option("--requests", "count", type=click.IntRange(min=1), default=160, show_default=True)
@click.option("--clients", default="1,8,40", show_default=True, help="Comma-separated numbers of clients.")
@click.option("--max-batch", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--max-wait-ms", type=float, default=10.0, show_default=True)
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="Also write the rows as JSON here.")
def main(task, model, count, clients, max_batch, max_wait_ms, output):
    sys.path.insert(0, str(REPOSITORY))
    from promptlab.catalog.catalog import Catalog
    from promptlab.kinds import task_examples
    texts = [example["text"] for example in task_examples(Catalog.from_options().task(task), "test", limit=count)]
    port = _free_port()
    server = _start(["--task", task, "--model", model, "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms)],
                    port)
    try:
        base = f"http://127.0.0.1:{port}"
        measure(base, texts[:8], 1)  # warm-up: calibration prior, first-call allocations
        rows = [measure(base, texts, int(number)) for number in clients.split(",")]
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"{task}, {model}, {len(texts)} one-text requests, --max-batch {max_batch} --max-wait-ms {max_wait_ms}")
    print("| clients | requests/s | p50 ms | p99 ms | texts per forward | vs one at a time |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        ratio = row["requests_per_second"] / rows[0]["requests_per_second"]
        print(f"| {row['clients']} | {row['requests_per_second']} | {row['p50_ms']} | {row['p99_ms']} | "
              f"{row['texts_per_forward']} | {ratio:.2f}x |")
    if output:
        Path(output).write_text(json.dumps({"task": task, "model": model, "max_batch": max_batch,
                                            "max_wait_ms": max_wait_ms, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
