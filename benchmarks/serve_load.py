"""`promptlab serve` under fire: concurrent good clients mixed with hostile ones, bounded in count and time.

    python benchmarks/serve_load.py [--task sentiment] [--model splade-tiny] [--clients 40] [--seconds 60]
                                    [--max-requests 10000] [--output FILE]

Starts `promptlab serve` on 127.0.0.1 (a free port; nothing else is contacted). The reference is
`promptlab predict` on the same texts and model. Then `--clients` threads send requests until
`--seconds` pass or `--max-requests` are sent: every tenth is a bad one, in turn malformed JSON, a
missing field, a body over the limit, a slot marker, a 20,001-character text, a `mask` field; five
slow clients open a connection and send nothing. Reported: throughput and p50/p99 latency of the good
requests, the status of every bad one, whether any good answer differs from predict's, the server's
RSS after the first 1,000 requests and at the end, /health afterwards; and the micro-batching ratio:
one-text requests from `--clients` clients in flight, the server's texts/s against predict's texts/s
on the same texts (predict's own rows/s line, model loading excluded), side by side in one run.
"""
from __future__ import annotations

import json
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import REPOSITORY, _call, _free_port, _percentile, _start  # noqa: E402 (the plain serve benchmark's)

SLOT_MARKER = "\x00PROMPTLAB-SLOT\x00"
BAD = [("malformed JSON", b'{"inputs": [{"text": "unterminated'),
       ("missing field", json.dumps({"inputs": [{"body": "no text field"}]}).encode()),
       ("huge body", b'{"inputs": [{"text": "' + b"x" * (9 * 1024 * 1024) + b'"}]}'),
       ("slot marker", json.dumps({"inputs": [{"text": f"good {SLOT_MARKER} film"}]}).encode()),
       ("20k-character text", json.dumps({"inputs": [{"text": "a" * 20_001}]}).encode()),
       ("mask field", json.dumps({"inputs": [{"text": "fine", "mask": "x"}]}).encode())]
SLOW_CLIENTS = 5


def post(url: str, body: bytes) -> tuple[int, dict | None]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read())
        except ValueError:
            return error.code, None
    except OSError:  # the server may close a huge upload early
        return -1, None


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def slow_client(port: int, seconds: float) -> None:
    """Opens a connection and sends nothing."""
    with socket.create_connection(("127.0.0.1", port)):
        time.sleep(seconds)


def predict_reference(task: str, model: str, texts: list[str], folder: Path) -> tuple[list[dict], float]:
    source, output = folder / "texts.jsonl", folder / "predicted.jsonl"
    source.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    output.unlink(missing_ok=True)
    done = subprocess.run([sys.executable, "-m", "promptlab", "predict", "--task", task, "--model", model,
                           "--input", str(source), "--output", str(output)], capture_output=True, text=True,
                          cwd=REPOSITORY, check=True)
    rate = float(re.search(r"\(([\d.]+) rows/s\)", done.stderr).group(1))
    return [json.loads(line) for line in output.read_text().splitlines()], rate


@click.command()
@click.option("--task", default="sentiment", show_default=True)
@click.option("--model", default="splade-tiny", show_default=True)
@click.option("--clients", type=click.IntRange(min=1), default=40, show_default=True)
@click.option("--seconds", type=click.FloatRange(min=1), default=60.0, show_default=True)
@click.option("--max-requests", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option("--texts", "text_count", type=click.IntRange(min=1), default=400, show_default=True)
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="Also write the report as JSON here.")
def main(task, model, clients, seconds, max_requests, text_count, output):
    sys.path.insert(0, str(REPOSITORY))
    from promptlab.catalog.catalog import Catalog
    from promptlab.kinds import task_examples
    texts = [example["text"] for example in task_examples(Catalog.from_options().task(task), "test",
                                                           limit=text_count)]
    folder = Path(output).parent if output else Path("/tmp")
    reference, predict_rate = predict_reference(task, model, texts, folder)
    port = _free_port()
    server = _start(["--task", task, "--model", model], port)
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()  # the micro-batching ratio: one text per request, `clients` in flight
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(lambda text: post(f"{base}/classify", json.dumps({"inputs": [{"text": text}]}).encode()),
                          texts))
        serve_rate = len(texts) / (time.perf_counter() - started)

        slow = [threading.Thread(target=slow_client, args=(port, min(seconds, 30)), daemon=True)
                for _ in range(SLOW_CLIENTS)]
        for thread in slow:
            thread.start()
        counter, lock = iter(range(max_requests)), threading.Lock()
        latencies, bad_status, differing, rss = [], Counter(), [], {}
        deadline = time.monotonic() + seconds

        def client() -> None:
            while time.monotonic() < deadline:
                with lock:
                    number = next(counter, None)
                if number is None:
                    return
                if number == 1000:
                    rss["after_1000"] = rss_mb(server.pid)
                if number % 10 == 9:
                    name, body = BAD[(number // 10) % len(BAD)]
                    status, answer = post(f"{base}/classify", body)
                    bad_status[(name, status, answer is not None and "error" in answer)] += 1
                    continue
                index = number % len(texts)
                begun = time.perf_counter()
                status, answer = post(f"{base}/classify", json.dumps({"inputs": [{"text": texts[index]}]}).encode())
                latencies.append(time.perf_counter() - begun)
                if status != 200 or answer["predictions"][0]["label"] != reference[index]["label"] or any(
                        abs(answer["predictions"][0]["probabilities"][label] - p) > 1e-4
                        for label, p in reference[index]["probabilities"].items()):
                    differing.append((index, status))

        began = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            for future in [pool.submit(client) for _ in range(clients)]:
                future.result()
        elapsed = time.perf_counter() - began
        rss["end"] = rss_mb(server.pid)
        health = _call(f"{base}/health")["status"]
    finally:
        server.terminate()
        server.wait(timeout=60)
    sent = len(latencies) + sum(bad_status.values())
    report = {"task": task, "model": model, "clients": clients, "requests": sent, "seconds": round(elapsed, 1),
              "good_requests": len(latencies), "good_per_second": round(len(latencies) / elapsed, 1),
              "good_p50_ms": round(1000 * statistics.median(latencies), 1),
              "good_p99_ms": round(1000 * _percentile(latencies, 99), 1),
              "good_differing_from_predict": len(differing),
              "bad": [{"kind": name, "status": status, "json_error": has_error, "count": count}
                      for (name, status, has_error), count in sorted(bad_status.items())],
              "slow_clients": SLOW_CLIENTS, "rss_mb": rss, "health_after": health,
              "micro_batching": {"serve_texts_per_second": round(serve_rate, 1),
                                 "predict_texts_per_second": predict_rate,
                                 "ratio": round(serve_rate / predict_rate, 2)}}
    print(json.dumps(report, indent=2))
    if output:
        Path(output).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
