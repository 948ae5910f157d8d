"""`promptlab serve`: a real server on 127.0.0.1, real HTTP clients, answers equal to a plain loop over the model's
(tests/reference_lm.py) and to predict's."""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import reference_lm
from click.testing import CliRunner
from serving import Server, call, post

from promptlab.cli import main

pytest.importorskip("uvicorn")
pytest.importorskip("starlette")

WORDS = ["great", "terrible", "fun", "awful", "good", "boring", "love", "hate", "excellent", "bad"]


def classify(base: str, rows: list[dict], timeout: float = 60) -> tuple[int, dict]:
    return post(f"{base}/classify", rows, timeout)


@pytest.fixture(scope="module")
def server_arguments(toy_catalog_dir, sensitive_gpt2_dir):
    # float32, as the reference loop runs
    return ["--catalog", toy_catalog_dir, "--task", "toy", "--template", "t1", "--model", sensitive_gpt2_dir,
            "--dtype", "float32"]


QUEUE = 100  # rows allowed to wait
WAIT_MS = 1000  # long enough for the queue-full test to fill the queue while the worker collects a batch


@pytest.fixture(scope="module")
def server(server_arguments):
    started = Server(*server_arguments, "--max-queue", QUEUE, "--max-wait-ms", WAIT_MS)
    yield started
    started.stop()


def test_forty_concurrent_clients_get_what_a_plain_loop_over_the_model_computes(server, sensitive_gpt2_dir):
    requests = [[{"text": f"{WORDS[i % 10]} {WORDS[(i * 3 + 1) % 10]}", "ref": f"{i}-{j}"} for j in range(1 + i % 3)]
                for i in range(40)]
    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(lambda rows: classify(server.base, rows), requests))
    expected, uncalibrated = reference_lm.toy_answers(sensitive_gpt2_dir, [row["text"] for rows in requests for row in rows])
    served = []
    for rows, (status, body) in zip(requests, answers):
        assert status == 200, body
        assert len(body["predictions"]) == len(rows)
        served += body["predictions"]
    assert [row["label"] for row in served] == [reference_lm.top(want) for want in expected]
    for got, want in zip(served, expected):
        assert got["probabilities"] == pytest.approx(want, abs=1e-5)
    # the content-free prior moves every answer, so an uncalibrated (or wrongly calibrated) server would differ
    assert min(abs(got["probabilities"]["positive"] - plain["positive"]) for got, plain in zip(served, uncalibrated)) > 0.01
    status, info = call(f"{server.base}/info")
    assert status == 200 and info["task"] == "toy" and info["template"] == "t1" and info["calibrate"] == "contextual"
    assert info["model"] == str(sensitive_gpt2_dir) and info["trained"] is None and info["labels"] == ["negative", "positive"]
    assert info["batches"] < len(requests)  # concurrent requests shared forwards
    assert info["batch_size"] == 12  # serve's auto on a CPU: forwards of 12 within a micro-batch


@pytest.mark.parametrize("body, status, message", [
    (b"not json", 400, "not JSON"),
    (b'["text"]', 422, 'a list "inputs"'),
    (b'{"inputs": []}', 422, "is empty"),
    (b'{"inputs": ["great"]}', 422, "inputs[0] is not a JSON object"),
    (b'{"inputs": [{"text": "fun"}, {"body": "x"}]}', 422, "inputs[1] has no field 'text'"),
    (b'{"inputs": [{"text": 3}]}', 422, "inputs[0].text must be a string"),
    (json.dumps({"inputs": [{"text": "a" * 20_001}]}).encode(), 413, "the limit is 20000"),
])
def test_bad_payloads_get_a_4xx_with_a_json_message_and_the_server_keeps_serving(server, body, status, message):
    got, answer = call(f"{server.base}/classify", body)
    assert got == status and message in answer["error"]
    assert call(f"{server.base}/health")[0] == 200


def test_after_bad_payloads_the_server_still_classifies(server):
    call(f"{server.base}/classify", b"{")
    status, body = classify(server.base, [{"text": "great"}])
    assert status == 200 and body["predictions"][0]["label"] in ("negative", "positive")


def test_a_full_queue_answers_503_at_once_never_hangs(server):
    # The worker holds the first row while it waits WAIT_MS for others, so QUEUE more rows overflow the queue.
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(classify, server.base, [{"text": "good"}])
        time.sleep(0.2)
        started = time.monotonic()
        status, body = classify(server.base, [{"text": "fun"}] * QUEUE, timeout=10)
        assert status == 503 and "queue is full" in body["error"]
        assert time.monotonic() - started < WAIT_MS / 1000  # answered at once, before the batch is even formed
        assert first.result(timeout=30)[0] == 200
    too_many = classify(server.base, [{"text": "fun"}] * (QUEUE + 1))
    assert too_many[0] == 413 and "at most 100" in too_many[1]["error"]


def test_reject_below_answers_out_of_scope_as_predict_does(server_arguments, tmp_path):
    rows = [{"text": f"{WORDS[i]} {WORDS[(i * 7 + 3) % 10]}"} for i in range(10)]
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    plain = CliRunner().invoke(main, ["predict", *map(str, server_arguments), "--input", str(source),
                                      "--output", str(tmp_path / "plain.jsonl")])
    assert plain.exit_code == 0, plain.output
    top = sorted(max(json.loads(line)["probabilities"].values())
                 for line in (tmp_path / "plain.jsonl").read_text().splitlines())
    threshold = round((top[4] + top[5]) / 2, 6)  # between the 5th and 6th most confident: half are rejected
    assert top[4] < threshold < top[5]
    rejecting = Server(*server_arguments, "--reject-below", threshold)
    try:
        status, body = classify(rejecting.base, rows)
        info = call(f"{rejecting.base}/info")[1]
    finally:
        rejecting.stop()
    assert status == 200 and info["reject_below"] == threshold
    labels = [row["label"] for row in body["predictions"]]
    assert labels.count("out_of_scope") == 5
    for prediction in body["predictions"]:
        assert (prediction["label"] == "out_of_scope") == (max(prediction["probabilities"].values()) < threshold)


def test_batch_calibration_divides_out_a_prior_fixed_at_start_up_never_the_traffic(server_arguments, tmp_path):
    rows = [{"text": f"{WORDS[i]} {WORDS[(i * 3 + 1) % 10]}"} for i in range(10)]
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    refused = CliRunner().invoke(main, ["serve", *map(str, server_arguments), "--calibrate", "batch"])
    assert refused.exit_code == 2 and "needs --calibrate-on FILE" in refused.output
    result = CliRunner().invoke(main, ["predict", *map(str, server_arguments), "--calibrate", "batch", "--input",
                                       str(source), "--output", str(tmp_path / "predicted.jsonl")])
    assert result.exit_code == 0, result.output
    expected = [json.loads(line) for line in (tmp_path / "predicted.jsonl").read_text().splitlines()]
    calibrated = Server(*server_arguments, "--calibrate", "batch", "--calibrate-on", source)
    try:
        skewed = classify(calibrated.base, [{"text": "terrible awful"}] * 30)  # traffic that would move a running prior
        one_by_one = [classify(calibrated.base, [row]) for row in rows]
    finally:
        calibrated.stop()
    assert skewed[0] == 200
    for (status, body), want in zip(one_by_one, expected):
        assert status == 200 and body["predictions"][0]["label"] == want["label"]
        assert body["predictions"][0]["probabilities"] == pytest.approx(want["probabilities"], abs=1e-5)
