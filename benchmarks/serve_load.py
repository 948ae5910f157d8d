"""`promptlab serve` under fire: concurrent good clients mixed with hostile ones, bounded in count and time.

    python benchmarks/serve_load.py [--task sentiment] [--model splade-tiny] [--dtype float32] [--clients 40]
                                    [--seconds 120] [--max-requests 10000] [--output FILE]

Starts `promptlab serve` on 127.0.0.1 (a free port; nothing else is contacted). The reference is
`promptlab predict` on the same texts, model and dtype. Then `--clients` threads send requests until
`--seconds` pass or `--max-requests` are sent: every tenth is a bad one, in turn malformed JSON, a
missing field, a 9 MiB body with its length announced, the same sent chunked without a length, a
slot marker, a 20,001-character text, a `mask` field; five slow clients open a connection and send
nothing. Reported: throughput and p50/p99 latency of the good requests, the status of every bad one,
the good answers that differ from predict's (label changes, and probabilities further apart than
`--tolerance`, with the largest difference), the server's RSS after the first 1,000 requests and after
all of them, /health afterwards, the load average; and the micro-batching ratio: one-text requests
from `--clients` clients in flight, the server's texts/s against predict's texts/s on the same texts
(predict's own rows/s line, model loading excluded), at predict's default batch size and at the server's,
in `--ratio-rounds` alternated rounds of one run.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
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
HUGE = b'{"inputs": [{"text": "' + b"x" * (9 * 1024 * 1024) + b'"}]}'
BAD = [("malformed JSON", b'{"inputs": [{"text": "unterminated'),
       ("missing field", json.dumps({"inputs": [{"body": "no text field"}]}).encode()),
       ("huge body", HUGE),
       ("huge chunked body", HUGE),
       ("slot marker", json.dumps({"inputs": [{"text": f"good {SLOT_MARKER} film"}]}).encode()),
       ("20k-character text", json.dumps({"inputs": [{"text": "a" * 20_001}]}).encode()),
       ("mask field", json.dumps({"inputs": [{"text": "fine", "mask": "x"}]}).encode())]
SLOW_CLIENTS = 5


def post(url: str, body: bytes) -> tuple[int, dict | None]:
    """As most clients post: the whole body sent (its length announced), then the answer read."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read())
        except ValueError:
            return error.code, None
    except OSError:  # a reset connection: what a client saw before refused bodies were drained
        return -1, None


def post_chunked(port: int, path: str, body: bytes) -> tuple[int, dict | None]:
    """The body sent chunked (no length announced), 64 KiB at a time, then the answer read."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("POST", path, body=iter([body[i:i + 65536] for i in range(0, len(body), 65536)]),
                           encode_chunked=True, headers={"Content-Type": "application/json",
                                                         "Transfer-Encoding": "chunked"})
        response = connection.getresponse()
        try:
            return response.status, json.loads(response.read())
        except ValueError:
            return response.status, None
    except OSError:
        return -1, None
    finally:
        connection.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def slow_client(port: int, seconds: float) -> None:
    """Opens a connection and sends nothing."""
    with socket.create_connection(("127.0.0.1", port)):
        time.sleep(seconds)


def predict_reference(task: str, model: str, dtype: str, texts: list[str], folder: Path,
                      batch_size: int | str = "auto") -> tuple[list[dict], float]:
    source, output = folder / "texts.jsonl", folder / "predicted.jsonl"
    source.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    output.unlink(missing_ok=True)
    done = subprocess.run([sys.executable, "-m", "promptlab", "predict", "--task", task, "--model", model,
                           "--dtype", dtype, "--batch-size", str(batch_size), "--input", str(source), "--output",
                           str(output)], capture_output=True, text=True, cwd=REPOSITORY, check=True)
    rate = float(re.search(r"\(([\d.]+) rows/s\)", done.stderr).group(1))
    return [json.loads(line) for line in output.read_text().splitlines()], rate


@click.command()
@click.option("--task", default="sentiment", show_default=True)
@click.option("--model", default="splade-tiny", show_default=True)
@click.option("--dtype", default="float32", show_default=True,
              help="Of the server and of predict: float32 answers do not drift with the batch a text shares.")
@click.option("--clients", type=click.IntRange(min=1), default=40, show_default=True)
@click.option("--seconds", type=click.FloatRange(min=1), default=120.0, show_default=True)
@click.option("--max-requests", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option("--texts", "text_count", type=click.IntRange(min=1), default=400, show_default=True)
@click.option("--deadline-s", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="The server's --deadline-s: raise it on a machine shared with other work, where a good request "
                   "may wait past the default.")
@click.option("--ratio-rounds", type=click.IntRange(min=1), default=3, show_default=True,
              help="Rounds of predict, then serve, on the same texts for the micro-batching ratio: alternated, "
                   "so a change in the machine's load falls on both; the median ratio is reported.")
@click.option("--tolerance", type=click.FloatRange(min=0), default=1e-4, show_default=True,
              help="A good answer's probabilities may differ from predict's by this much (float rounding of the "
                   "batch composition); its label may not differ at all.")
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="Also write the report as JSON here.")
def main(task, model, dtype, clients, seconds, max_requests, text_count, deadline_s, ratio_rounds, tolerance,
         output):
    sys.path.insert(0, str(REPOSITORY))
    from promptlab.catalog.catalog import Catalog
    from promptlab.kinds import task_examples
    texts = [example["text"] for example in task_examples(Catalog.from_options().task(task), "test",
                                                           limit=text_count)]
    folder = Path(tempfile.mkdtemp(prefix="promptlab-serve-load-"))  # predict's input and output, not the report's
    load_before = os.getloadavg()
    reference, _ = predict_reference(task, model, dtype, texts, folder)
    port = _free_port()
    server = _start(["--task", task, "--model", model, "--dtype", dtype, "--deadline-s", str(deadline_s)], port)
    base = f"http://127.0.0.1:{port}"
    try:
        # The micro-batching ratio: one text per request, `clients` in flight, against predict at its own default
        # batch size and at the server's (which may suit the device better), alternated in every round.
        serve_batch_size = _call(f"{base}/info")["batch_size"]
        rounds = []
        for _ in range(ratio_rounds):
            predict_rate = predict_reference(task, model, dtype, texts, folder)[1]
            started = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                list(pool.map(lambda text: post(f"{base}/classify", json.dumps({"inputs": [{"text": text}]}).encode()),
                              texts))
            serve_rate = len(texts) / (time.perf_counter() - started)
            same_size_rate = predict_reference(task, model, dtype, texts, folder, serve_batch_size)[1]
            rounds.append({"predict_texts_per_second": predict_rate, "serve_texts_per_second": round(serve_rate, 1),
                           f"predict_batch_{serve_batch_size}_texts_per_second": same_size_rate,
                           "ratio": round(serve_rate / predict_rate, 2),
                           "ratio_to_predict_at_serve_batch_size": round(serve_rate / same_size_rate, 2)})

        slow = [threading.Thread(target=slow_client, args=(port, min(seconds, 30)), daemon=True)
                for _ in range(SLOW_CLIENTS)]
        for thread in slow:
            thread.start()
        counter, lock = iter(range(max_requests)), threading.Lock()
        latencies, bad_status, rss = [], Counter(), {}
        differing = {"label": 0, "probabilities": 0, "status": 0, "largest_difference": 0.0}
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
                    status, answer = (post_chunked(port, "/classify", body) if name == "huge chunked body"
                                      else post(f"{base}/classify", body))
                    bad_status[(name, status, answer is not None and "error" in answer)] += 1
                    continue
                index = number % len(texts)
                begun = time.perf_counter()
                status, answer = post(f"{base}/classify", json.dumps({"inputs": [{"text": texts[index]}]}).encode())
                latencies.append(time.perf_counter() - begun)
                with lock:
                    compare(status, answer, reference[index])

        def compare(status: int, answer: dict | None, want: dict) -> None:
            if status != 200:
                differing["status"] += 1
                return
            got = answer["predictions"][0]
            gap = max(abs(got["probabilities"][label] - p) for label, p in want["probabilities"].items())
            differing["largest_difference"] = max(differing["largest_difference"], gap)
            differing["label"] += got["label"] != want["label"]
            differing["probabilities"] += gap > tolerance

        began = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            for future in [pool.submit(client) for _ in range(clients)]:
                future.result()
        elapsed = time.perf_counter() - began
        rss["after_all"] = rss_mb(server.pid)
        health = _call(f"{base}/health")["status"]
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
    sent = len(latencies) + sum(bad_status.values())
    report = {"task": task, "model": model, "dtype": dtype, "clients": clients, "requests": sent,
              "seconds": round(elapsed, 1), "good_requests": len(latencies),
              "good_per_second": round(len(latencies) / elapsed, 1),
              "good_p50_ms": round(1000 * statistics.median(latencies), 1),
              "good_p99_ms": round(1000 * _percentile(latencies, 99), 1),
              "good_differing_from_predict": {**differing, "tolerance": tolerance},
              "bad": [{"kind": name, "status": status, "json_error": has_error, "count": count}
                      for (name, status, has_error), count in sorted(bad_status.items())],
              "slow_clients": SLOW_CLIENTS, "rss_mb": rss, "health_after": health,
              "load_average_before_after": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
              "deadline_s": deadline_s,
              "micro_batching": {"serve_batch_size": serve_batch_size, "rounds": rounds,
                                 "median_ratio": statistics.median(r["ratio"] for r in rounds),
                                 "median_ratio_to_predict_at_serve_batch_size": statistics.median(
                                     r["ratio_to_predict_at_serve_batch_size"] for r in rounds)}}
    print(json.dumps(report, indent=2))
    if output:
        Path(output).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
