"""`promptlab serve` under hostile clients: rows checked before batching, limits enforced while reading, a
deadline, 500s that tell only an id, and SIGTERM that lets the requests in flight finish."""
from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import http.client
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from entity_files import catalog  # noqa: F401 (a fixture: the tweetner catalog)
from serving import REPOSITORY, Server, call, free_port, post

from promptlab.apply.answering import plan_rows
from promptlab.catalog.catalog import Catalog

pytest.importorskip("uvicorn")
pytest.importorskip("starlette")

SLOT_MARKER = "\x00PROMPTLAB-SLOT\x00"


@pytest.fixture(scope="module")
def arguments(toy_catalog_dir, sensitive_gpt2_dir):
    return ["--catalog", toy_catalog_dir, "--task", "toy", "--template", "t1", "--model", sensitive_gpt2_dir]


@pytest.fixture(scope="module")
def limited(arguments):
    """A server with small limits; each request waits up to 1 s for company, past its 0.5 s deadline."""
    started = Server(*arguments, "--max-body-bytes", 2000, "--max-rows", 3, "--max-text-chars", 50,
                     "--max-wait-ms", 1000, "--deadline-s", 0.5)
    yield started
    started.stop()


@pytest.mark.parametrize("rows, message", [
    ([{"text": "fun"}, {"text": "great", "mask": "x"}], "inputs[1]: example ? has a field named 'mask'"),
    ([{"text": f"great {SLOT_MARKER} film"}], "inputs[0]: example ?: field 'text' holds the reserved sequence"),
])
def test_a_bad_row_fails_its_own_request_before_batching(limited, rows, message):
    batches = call(f"{limited.base}/info")[1]["batches"]
    status, body = post(f"{limited.base}/classify", rows)
    assert status == 422 and body["error"].startswith(message), body
    assert call(f"{limited.base}/info")[1]["batches"] == batches  # the bad rows never reached the worker


def test_limits_answer_413_and_are_listed_in_info(limited):
    status, info = call(f"{limited.base}/info")
    assert status == 200
    assert (info["max_body_bytes"], info["max_rows"], info["max_text_chars"], info["deadline_s"]) == (2000, 3, 50, 0.5)
    status, body = post(f"{limited.base}/classify", [{"text": "fun"}] * 4)
    assert status == 413 and "at most 3 (--max-rows)" in body["error"]
    status, body = post(f"{limited.base}/classify", [{"text": "a" * 51}])
    assert status == 413 and "inputs[0].text has 51 characters; the limit is 50" in body["error"]
    status, body = post(f"{limited.base}/classify", [{"text": "fun", "note": "x" * 2100}])
    assert status == 413 and "the body has 2141 bytes; the limit is 2000" in body["error"]


def test_a_chunked_body_is_counted_as_it_arrives(limited):
    connection = http.client.HTTPConnection("127.0.0.1", limited.port, timeout=10)
    chunks = [b'{"inputs": [{"text": "fun", "note": "', *[b"x" * 1000] * 3, b'"}]}']  # no length announced
    connection.request("POST", "/classify", body=iter(chunks), encode_chunked=True,
                       headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    response = connection.getresponse()
    assert response.status == 413 and "more than 2000 bytes" in json.loads(response.read())["error"]
    connection.close()


def test_a_declared_huge_body_gets_413_before_it_is_sent(limited):
    connection = http.client.HTTPConnection("127.0.0.1", limited.port, timeout=10)
    connection.putrequest("POST", "/classify")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(10 ** 9))
    connection.endheaders(b'{"inputs": [')  # a gigabyte announced, a dozen bytes sent
    response = connection.getresponse()
    assert response.status == 413 and "the body has 1000000000 bytes; the limit is 2000" in json.loads(
        response.read())["error"]
    connection.close()
    assert call(f"{limited.base}/health")[0] == 200


def test_a_request_past_its_deadline_gets_504_and_the_worker_moves_on(limited):
    started = time.monotonic()
    status, body = post(f"{limited.base}/classify", [{"text": "fun"}])
    assert status == 504 and "deadline of 0.5 s" in body["error"]
    assert time.monotonic() - started < 1.0  # answered at the deadline, not when the batch would have run
    assert call(f"{limited.base}/health")[0] == 200


class InProcess:
    """create_app served by uvicorn on a thread of this process, so a test can wrap what answers."""

    def __init__(self, app):
        import uvicorn
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=15)


def test_a_row_that_fails_inside_a_batch_fails_only_its_request_with_an_id_and_a_logged_traceback(
        toy_catalog_dir, sensitive_gpt2_dir, caplog):
    from dataclasses import replace

    from promptlab.apply.serve import create_app
    predictor = plan_rows(Catalog.from_options([str(toy_catalog_dir)]), task="toy", trained=None, template="t1",
                          model=str(sensitive_gpt2_dir)).load(device="cpu")

    def answer(rows, positions):  # a scoring failure on one row, injected past the handler's checks
        if any(row["text"] == "explode" for row in rows):
            raise RuntimeError("secret internal detail")
        return predictor.answer(rows, positions)

    requests = [[{"text": "great fun"}, {"text": "awful"}], [{"text": "explode"}], [{"text": "boring film"}]]
    alone = [predictor.answer(rows, list(range(len(rows)))) for rows in requests[::2]]
    server = InProcess(create_app(replace(predictor, answer=answer), max_wait_ms=500))
    try:
        with caplog.at_level(logging.ERROR, logger="promptlab.serve"), ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(lambda rows: post(f"{server.base}/classify", rows), requests))
        info = call(f"{server.base}/info")[1]
    finally:
        server.stop()
    assert info["batches"] == 1  # the three requests shared one batch
    assert [answers[0], answers[2]] == [(200, {"predictions": rows}) for rows in alone]
    status, body = answers[1]
    assert status == 500 and "secret" not in json.dumps(body) and len(body["request_id"]) == 16
    (record,) = [record for record in caplog.records if body["request_id"] in record.getMessage()]
    assert "secret internal detail" in "".join(logging.Formatter().formatException(record.exc_info))


def test_sigterm_finishes_the_requests_in_flight_and_exits_0(arguments):
    server = Server(*arguments, "--max-wait-ms", 1500)
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(post, f"{server.base}/classify", [{"text": "great fun"}])
        time.sleep(0.5)  # the request waits in the worker for company
        server.process.send_signal(signal.SIGTERM)
        status, body = in_flight.result(timeout=30)
    assert status == 200 and body["predictions"][0]["label"] in ("negative", "positive")
    assert server.process.wait(timeout=30) == 0
    with pytest.raises(OSError):
        call(f"{server.base}/health", timeout=2)


def _urllib_post(url: str, body: bytes) -> tuple[int, dict]:
    """POST as most clients do: the whole body is sent before the answer is read."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_client_that_sends_a_whole_huge_body_reads_the_413(limited):
    # 16 MiB: far more than the socket buffers hold, so a server that answered and closed while the body was still
    # arriving would reset the connection under the client instead
    body = b'{"inputs": [{"text": "' + b"x" * (16 * 1024 * 1024) + b'"}]}'
    status, answer = _urllib_post(f"{limited.base}/classify", body)
    assert status == 413 and f"the body has {len(body)} bytes; the limit is 2000" in answer["error"]
    connection = http.client.HTTPConnection("127.0.0.1", limited.port, timeout=60)
    connection.request("POST", "/classify", body=iter([body[i:i + 65536] for i in range(0, len(body), 65536)]),
                       encode_chunked=True, headers={"Content-Type": "application/json",
                                                     "Transfer-Encoding": "chunked"})
    response = connection.getresponse()  # no length announced: counted while read, then dropped
    assert response.status == 413 and "more than 2000 bytes" in json.loads(response.read())["error"]
    connection.close()
    assert call(f"{limited.base}/health")[0] == 200


def test_an_entity_prompt_request_is_bounded_in_candidate_spans(catalog, tiny_bert_dir):
    # "Alice met Bob in Paris" has 5 candidate spans by hand (capitalised n-grams of at most 3 words that start
    # and end with a capitalised word): Alice, Alice met Bob, Bob, Bob in Paris, Paris
    server = Server("--catalog", catalog, "--task", "tweetner", "--model", tiny_bert_dir, "--max-spans", 5)
    try:
        assert call(f"{server.base}/info")[1]["max_spans"] == 5
        status, body = post(f"{server.base}/entities", [{"text": "Alice met Bob in Paris"}])
        assert status == 200 and len(body["predictions"]) == 1
        status, body = post(f"{server.base}/entities", [{"text": "no names"}, {"text": "Alice met Bob in Paris"},
                                                         {"text": "Carol"}])
        assert status == 413 and body["error"].startswith(
            "inputs[2]: the request has 6 candidate spans up to this row; one request takes at most 5 (--max-spans)")
    finally:
        server.stop()


HEAP_HOLE_RETURNED = """
import ctypes, ctypes.util, os, sys
from promptlab.runtime.memory import release_freed_memory

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

def resident_mib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

blocks = [libc.malloc(64 << 10) for _ in range(1600)]  # 100 MiB in blocks under the mmap threshold: heap
for block in blocks:
    ctypes.memset(block, 1, 64 << 10)
for block in blocks[:-1]:  # the last one, kept, is above them on the heap: its top cannot shrink past it
    libc.free(block)
before = resident_mib()
returned = release_freed_memory() if sys.argv[1] == "release" else False
print(returned, round(before - resident_mib()))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or not hasattr(ctypes.CDLL(ctypes.util.find_library("c")),
                                                                         "malloc_trim"), reason="glibc only")
@pytest.mark.parametrize("call, returned", [("keep", "False"), ("release", "True")])
def test_a_hole_freed_inside_the_heap_is_given_back_only_when_released(call, returned):
    """What keeps serve's memory flat (promptlab.runtime.memory, called after every micro-batch): in a fresh
    process, so the heap holds only this test's blocks."""
    done = subprocess.run([sys.executable, "-c", HEAP_HOLE_RETURNED, call], capture_output=True,
                          text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPOSITORY)})
    flag, given_back_mib = done.stdout.split()
    assert flag == returned
    assert (int(given_back_mib) >= 90) == (call == "release")  # of the 99.9 MiB freed


def test_the_token_cache_is_bounded_in_characters_and_keeps_what_was_used_last(tiny_bert_dir, monkeypatch):
    from transformers import AutoTokenizer

    from promptlab.backends import inputs
    monkeypatch.setattr(inputs, "TOKEN_CACHE_CHARACTERS", 100)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    reader = inputs.PromptTokens(tokenizer)
    texts = [f"great fun number {i}" for i in range(50)]  # 19 or 20 characters each: 5 fit
    for text in texts:
        assert reader._tokens(text) == tuple(tokenizer(text, add_special_tokens=False)["input_ids"])
        reader._tokens(texts[0])  # kept in use, so never the one dropped
    assert list(reader._cache) == [*texts[46:], texts[0]]
    assert reader._cached_characters == sum(map(len, reader._cache)) <= 100
