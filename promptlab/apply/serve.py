"""The HTTP service: a Starlette (ASGI) app, served by uvicorn, with a micro-batching queue.

    POST /classify  {"inputs": [{"text": "..."}, ...]}  ->  {"predictions": [{"label", "probabilities"}, ...]}
    POST /entities  (entity tasks) the same inputs  ->  {"predictions": [{"entities": [{start, end, type, text,
                    score}, ...]}, ...]}
    GET  /health    200 {"status": "ok"} while the worker runs (the model loads before the port opens)
    GET  /info      task, model, method, trained artefact, scoring, labels or types, fields, limits
    GET  /          a page to try the service in a browser (promptlab.apply.assist_page)

What answers the rows is the task's `RowPredictor` (promptlab.apply.answering), the one `predict`
uses: its route, the fields every row needs, and one function from rows to answers.
Requests wait in one queue; one worker takes what is waiting, up to `max_batch` rows (waiting at
most `max_wait_ms` for more to arrive after the first), answers it in one call on its own thread
(the event loop keeps accepting requests meanwhile), and answers each request its own rows, in
order. More than `max_queue` rows waiting answers 503 at once instead of queueing without bound.
A bad payload (not JSON, no `inputs` list, an empty list, a row that is not an object, a missing
field, a field that is not a string, a text over MAX_TEXT_CHARS, a body over MAX_BODY_BYTES)
answers 4xx with {"error": message}; nothing a client sends stops the server.

The rows of a request are positions 0..n-1 of an input, as the rows of a `predict` file are, so a
request gets exactly what `predict` writes for the same rows (batch calibration aside: its running
prior covers everything the server has classified, as predict's covers the file so far).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from promptlab.apply.assist_page import page_route
from promptlab.apply.classifier import Classifier
from promptlab.apply.answering import RowPredictor, classifier_rows

MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_TEXT_CHARS = 20_000


class QueueFull(Exception):
    pass


class BadInput(Exception):
    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.message, self.status = message, status


@dataclass
class _Job:
    rows: list[dict]
    future: asyncio.Future


@dataclass
class MicroBatcher:
    """Collects waiting requests into batches for one worker; see the module docstring."""

    answer: Callable[[list[dict], list[int]], list[dict]]  # rows, positions -> one answer per row
    max_batch: int = 64
    max_wait_ms: float = 10.0
    max_queue: int = 1000
    waiting: int = 0  # rows queued and not yet taken by the worker
    batches: int = 0  # batches answered so far (for /info)
    _queue: asyncio.Queue | None = None
    _carry: _Job | None = None  # a job that did not fit the last batch: it starts the next
    _executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "promptlab-worker"))
    _task: asyncio.Task | None = None

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def submit(self, rows: list[dict]) -> list[dict]:
        if self.waiting + len(rows) > self.max_queue:
            raise QueueFull
        job = _Job(rows, asyncio.get_running_loop().create_future())
        self.waiting += len(rows)
        self._queue.put_nowait(job)
        return await job.future

    async def _next_batch(self) -> list[_Job]:
        first = self._carry or await self._queue.get()
        self._carry = None
        jobs, size = [first], len(first.rows)
        deadline = time.monotonic() + self.max_wait_ms / 1000
        while size < self.max_batch:
            try:
                job = self._queue.get_nowait() if self._queue.qsize() else await asyncio.wait_for(
                    self._queue.get(), max(0.0, deadline - time.monotonic()))
            except (asyncio.TimeoutError, TimeoutError):
                break
            if size + len(job.rows) > self.max_batch:
                self._carry = job
                break
            jobs.append(job)
            size += len(job.rows)
        self.waiting -= size
        return jobs

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._next_batch()
            live = [job for job in jobs if not job.future.done()]  # a client that hung up is skipped
            rows = [row for job in live for row in job.rows]
            positions = [position for job in live for position in range(len(job.rows))]
            if not rows:
                continue
            try:
                predictions = await loop.run_in_executor(self._executor, self.answer, rows, positions)
            except Exception as error:  # noqa: BLE001 - answered as a 500; the worker keeps serving
                for job in live:
                    if not job.future.done():
                        job.future.set_exception(error)
                continue
            self.batches += 1
            start = 0
            for job in live:
                if not job.future.done():
                    job.future.set_result(predictions[start:start + len(job.rows)])
                start += len(job.rows)


def check_payload(body: bytes, fields: frozenset[str], max_rows: int) -> list[dict]:
    """The rows of a request body, or BadInput naming what is wrong and where."""
    if len(body) > MAX_BODY_BYTES:
        raise BadInput(f"the body has {len(body)} bytes; the limit is {MAX_BODY_BYTES}", 413)
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadInput(f"the body is not JSON: {error}", 400) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
        raise BadInput('the body must be a JSON object with a list "inputs", e.g. {"inputs": [{"text": "..."}]}')
    rows = payload["inputs"]
    if not rows:
        raise BadInput('"inputs" is empty: send at least one row')
    if len(rows) > max_rows:
        raise BadInput(f'"inputs" has {len(rows)} rows; one request takes at most {max_rows} (--max-queue)', 413)
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise BadInput(f"inputs[{index}] is not a JSON object")
        for name in sorted(fields):
            if name not in row:
                raise BadInput(f"inputs[{index}] has no field '{name}' (every row needs: {', '.join(sorted(fields))})")
            if not isinstance(row[name], str):
                raise BadInput(f"inputs[{index}].{name} must be a string, not {type(row[name]).__name__}")
            if len(row[name]) > MAX_TEXT_CHARS:
                raise BadInput(f"inputs[{index}].{name} has {len(row[name])} characters; the limit is {MAX_TEXT_CHARS}",
                               413)
    return rows


def classifier_service(classifier: Classifier, info: dict, *, reject_threshold: float | None = None
                       ) -> RowPredictor:
    """POST /classify on a loaded classifier; with `reject_threshold`, a row whose top probability is below it
    is answered `out_of_scope`."""
    return classifier_rows(classifier, info, reject_threshold=reject_threshold)


def create_app(service: RowPredictor, *, max_batch: int = 64, max_wait_ms: float = 10.0, max_queue: int = 1000,
               extra_routes: Callable[[Callable], list] | None = None) -> Starlette:
    """The ASGI app around a row predictor: its route, /health, /info and the page to try it (GET /).

    `extra_routes(submit)` adds routes that answer through the same queue (`await submit(rows)`): the
    assistant's POST /reply (promptlab.apply.assist_routes)."""
    batcher = MicroBatcher(service.answer, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue)

    async def answer_route(request: Request) -> JSONResponse:
        try:
            rows = check_payload(await request.body(), service.fields, max_queue)
            predictions = await batcher.submit(rows)
        except BadInput as error:
            return JSONResponse({"error": error.message}, status_code=error.status)
        except QueueFull:
            return JSONResponse({"error": f"the queue is full ({max_queue} rows waiting); retry shortly"},
                                status_code=503, headers={"Retry-After": "1"})
        except Exception as error:  # noqa: BLE001 - one failed batch is a 500, never a dead server
            return JSONResponse({"error": f"prediction failed: {type(error).__name__}: {error}"}, status_code=500)
        return JSONResponse({"predictions": predictions})

    async def health(request: Request) -> JSONResponse:
        if not batcher.running:
            return JSONResponse({"status": "stopped"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def info_route(request: Request) -> JSONResponse:
        return JSONResponse({**service.info, "fields": sorted(service.fields), "max_batch": max_batch,
                             "max_wait_ms": max_wait_ms, "max_queue": max_queue, "waiting": batcher.waiting,
                             "batches": batcher.batches})

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        await batcher.stop()

    extra = extra_routes(batcher.submit) if extra_routes else []
    return Starlette(routes=[Route(service.route, answer_route, methods=["POST"]), Route("/health", health),
                             Route("/info", info_route), page_route(), *extra], lifespan=lifespan)
