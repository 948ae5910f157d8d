"""A real `promptlab serve` for tests: a child process on 127.0.0.1, and a small HTTP client."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def call(url: str, body: bytes | None = None, timeout: float = 60) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def post(url: str, rows: list[dict], timeout: float = 60) -> tuple[int, dict]:
    """POST {"inputs": rows} to `url`: (status, answer)."""
    return call(url, json.dumps({"inputs": rows}).encode(), timeout)


class Server:
    """`promptlab serve` in a child process on 127.0.0.1, stopped (by its own pid) at the end."""

    def __init__(self, *arguments):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "promptlab", "serve", *map(str, arguments), "--host", "127.0.0.1",
                   "--port", str(self.port)]
        self.process = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited: {self.process.stdout.read()}")
            try:
                if call(f"{self.base}/health", timeout=2)[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError("serve did not answer /health within 90 s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
