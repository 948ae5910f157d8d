"""The HTTP service: a Starlette (ASGI) app, served by uvicorn, with a micro-batching queue.

    POST /classify  {"inputs": [{"text": "..."}, ...]}  ->  {"predictions": [{"label", "probabilities"}, ...]}
    POST /entities  (entity tasks) the same inputs  ->  {"predictions": [{"entities": [{start, end, type, text,
                    score}, ...]}, ...]}
    GET  /health    200 {"status": "ok"} while the worker runs (the model loads before the port opens)
    GET  /info      task, model, method, trained artefact, scoring, labels or types, fields, limits
    GET  /          a page to try the service in a browser (promptlab.apply.assist_page)

What answers the rows is the task's `RowPredictor` (promptlab.apply.answering), the one `predict`
uses: its route, the fields every row needs, and one function from rows to answers.
Every row of a request is checked in the request's own handler before it is queued (fields, types,
length, and the row rendered through the task's reader: a `mask` field or the template's internal
slot marker is refused there), so a bad row answers its request 4xx naming the row and never reaches
a shared batch; should a batch still fail, its rows are answered one by one and only the rows that
fail fail. Requests wait in one queue; one worker takes what is waiting, up to `max_batch` rows (waiting at
most `max_wait_ms` for more to arrive after the first), answers it in one call on its own thread
(the event loop keeps accepting requests meanwhile), and answers each request its own rows, in
order. More than `max_queue` rows waiting answers 503 at once instead of queueing without bound.
A bad payload (not JSON, no `inputs` list, an empty list, a row that is not an object, a missing
field, a field that is not a string, a row its reader refuses) answers 4xx with {"error": message}.
`Limits` bound what one request may cost, each enforced as the request arrives: the body (413 as soon
as its announced or read length passes it; the rest is read and dropped, never stored, so the client
reads the 413), rows per request, characters per text field, candidate spans per entity-prompt
request, and a deadline (504 when a request waits or runs longer; the worker skips its rows if not
begun). Other routes (the assistant's POST /reply) read and fail through the same `Gateway`.
A failure of the server itself answers 500 with a request id and a generic message; the log line
has the id and the traceback. Nothing a client sends stops the server.

The rows of a request are positions 0..n-1 of an input, as the rows of a `predict` file are, so a
request gets exactly what `predict` writes for the same rows; batch calibration divides out a prior
fixed at start-up (serve --calibrate-on), never one that other clients' traffic moves.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from promptlab.apply.assist_page import page_route
from promptlab.apply.classifier import Classifier
from promptlab.apply.answering import RowPredictor, classifier_rows
from promptlab.errors import UserError
from promptlab.runtime.memory import release_freed_memory

MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_TEXT_CHARS = 20_000
MAX_SPANS = 1000
DISCARD_BYTES = 64 * 1024 * 1024  # a refused body is read and dropped up to this size, within the deadline
LOG = logging.getLogger("promptlab.serve")


@dataclass(frozen=True)
class Limits:
    """What one request may cost (serve's --max-body-bytes, --max-rows, --max-text-chars, --deadline-s)."""

    max_body_bytes: int = MAX_BODY_BYTES
    max_rows: int = 1000  # rows in one request (never more than the queue holds)
    max_text_chars: int = MAX_TEXT_CHARS  # characters in one field of one row
    deadline_s: float = 60.0  # from the body read to the answer
    max_spans: int = MAX_SPANS  # candidate spans one entity-prompt request renders and scores

    def describe(self) -> dict:
        return asdict(self)


class QueueFull(Exception):
    pass


class RowFailed(Exception):
    """A row that failed inside a batch though its checks passed: its request gets a 500."""

    def __init__(self, index: int, error: Exception):
        super().__init__(f"inputs[{index}]: {type(error).__name__}: {error}")
        self.index, self.error = index, error


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
                predictions = await loop.run_in_executor(self._executor, self._answer, rows, positions)
            except Exception:  # noqa: BLE001 - the rows are answered one by one: only those that fail fail
                predictions = await loop.run_in_executor(self._executor, self._one_by_one, rows, positions)
            self.batches += 1
            start = 0
            for job in live:
                answers = predictions[start:start + len(job.rows)]
                start += len(job.rows)
                if job.future.done():
                    continue
                failed = next((index for index, answer in enumerate(answers) if isinstance(answer, Exception)), None)
                if failed is None:
                    job.future.set_result(answers)
                else:
                    job.future.set_exception(RowFailed(failed, answers[failed]))

    def _answer(self, rows: list[dict], positions: list[int]) -> list[dict]:
        try:
            return self.answer(rows, positions)
        finally:
            release_freed_memory()  # a week of batches of every shape must not grow the heap (runtime.memory)

    def _one_by_one(self, rows: list[dict], positions: list[int]) -> list[dict | Exception]:
        answers = []
        for row, position in zip(rows, positions):
            try:
                answers += self._answer([row], [position])
            except Exception as error:  # noqa: BLE001 - this row's request fails, no other
                answers.append(error)
        return answers


async def read_body(request: Request, max_bytes: int = MAX_BODY_BYTES, discard_s: float = 60.0) -> bytes:
    """The request body, refused (413) as soon as its declared or read length passes `max_bytes`.

    A refused body is not stored: the rest of it is read and dropped (see `_discard`, for `discard_s` seconds at
    most) before the 413 goes out.
    """
    declared = request.headers.get("content-length", "")
    stream = request.stream()
    if declared.isdigit() and int(declared) > max_bytes:
        await _discard(stream, int(declared), discard_s)
        raise BadInput(f"the body has {int(declared)} bytes; the limit is {max_bytes}", 413)
    chunks, size = [], 0
    async for chunk in stream:
        size += len(chunk)
        if size > max_bytes:
            await _discard(stream, size, discard_s)
            raise BadInput(f"the body has more than {max_bytes} bytes, the limit", 413)
        chunks.append(chunk)
    return b"".join(chunks)


async def _discard(stream, size: int, seconds: float) -> None:
    """Reads and drops what is left of a refused body, `DISCARD_BYTES` in all and for `seconds` at most.

    A client sends the whole body before it reads the answer (urllib, http.client, httpx do): a server that
    answers and closes with the body still arriving makes the kernel reset the connection, and the client sees
    the reset, never the 413. A body announced larger than the bound, or one that keeps coming past it, is not
    waited for: that client gets the 413 only if it reads before it has sent everything.
    """
    async def drop(read: int) -> None:
        async for chunk in stream:
            read += len(chunk)
            if read > DISCARD_BYTES:
                return

    if size <= DISCARD_BYTES:
        with contextlib.suppress(asyncio.TimeoutError, TimeoutError, ClientDisconnect):
            await asyncio.wait_for(drop(size), seconds)


def check_payload(body: bytes, fields: frozenset[str], max_rows: int, max_text_chars: int = MAX_TEXT_CHARS
                  ) -> list[dict]:
    """The rows of a request body, or BadInput naming what is wrong and where."""
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
        raise BadInput(f'"inputs" has {len(rows)} rows; one request takes at most {max_rows} (--max-rows)', 413)
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise BadInput(f"inputs[{index}] is not a JSON object")
        for name in sorted(fields):
            if name not in row:
                raise BadInput(f"inputs[{index}] has no field '{name}' (every row needs: {', '.join(sorted(fields))})")
            if not isinstance(row[name], str):
                raise BadInput(f"inputs[{index}].{name} must be a string, not {type(row[name]).__name__}")
            if len(row[name]) > max_text_chars:
                raise BadInput(f"inputs[{index}].{name} has {len(row[name])} characters; the limit is {max_text_chars}"
                               " (--max-text-chars)", 413)
    return rows


def classifier_service(classifier: Classifier, info: dict, *, reject_threshold: float | None = None
                       ) -> RowPredictor:
    """POST /classify on a loaded classifier; with `reject_threshold`, a row whose top probability is below it
    is answered `out_of_scope`."""
    return classifier_rows(classifier, info, reject_threshold=reject_threshold)


def check_rows(rows: list[dict], service: RowPredictor, max_spans: int = MAX_SPANS) -> None:
    """Each row through the service's own check (a classifier renders it), in the request's handler; then what
    the rows cost (an entity-prompt request: its candidate spans, one prompt each) against `max_spans`."""
    for index, row in enumerate(rows):
        try:
            service.check(row)
        except UserError as error:
            raise BadInput(f"inputs[{index}]: {error.inline}") from None
    if service.cost is None:
        return
    spans = 0
    for index, row in enumerate(rows):
        spans += service.cost(row)
        if spans > max_spans:
            raise BadInput(f"inputs[{index}]: the request has {spans} candidate spans up to this row; one request "
                           f"takes at most {max_spans} (--max-spans): send shorter texts or fewer rows", 413)


def server_error(error: BaseException) -> JSONResponse:
    """A 500 that tells the client only an id to quote; the log has the id and the traceback."""
    request_id = uuid.uuid4().hex[:16]
    LOG.error("request %s failed", request_id, exc_info=error)
    return JSONResponse({"error": "internal error: the server could not answer this request",
                         "request_id": request_id}, status_code=500)


@dataclass(frozen=True)
class Gateway:
    """What a route of the app answers through (create_app's `extra_routes` get one): the request's rows read and
    checked under the server's limits, the micro-batching queue, and the endpoint that turns every failure into a
    JSON error."""

    read_rows: Callable[..., Awaitable[list[dict]]]  # (request, fields=the service's) -> rows, else BadInput
    submit: Callable[[list[dict]], Awaitable[list[dict]]]  # rows -> one answer each, through the queue
    endpoint: Callable[[Callable[[Request], Awaitable[dict]]], Callable]  # handler -> endpoint answering JSON
    limits: Limits


def json_endpoint(handle: Callable[[Request], Awaitable[dict]], *, max_queue: int, limits: Limits) -> Callable:
    """An endpoint answering `await handle(request)` within the deadline, and each failure as a JSON error: the
    client's own mistakes 4xx, a full queue 503, the deadline 504, anything else a 500 with only a request id."""
    async def endpoint(request: Request) -> JSONResponse:
        try:
            return JSONResponse(await handle(request))
        except BadInput as error:
            return JSONResponse({"error": error.message}, status_code=error.status)
        except UserError as error:
            return JSONResponse({"error": error.inline}, status_code=422)
        except QueueFull:
            return JSONResponse({"error": f"the queue is full ({max_queue} rows waiting); retry shortly"},
                                status_code=503, headers={"Retry-After": "1"})
        except (asyncio.TimeoutError, TimeoutError):
            return JSONResponse({"error": f"no answer within the deadline of {limits.deadline_s} s; retry with "
                                          "fewer rows or later"}, status_code=504)
        except Exception as error:  # noqa: BLE001 - one failed request is a 500, never a dead server
            return server_error(error)

    return endpoint


def create_app(service: RowPredictor, *, max_batch: int = 64, max_wait_ms: float = 10.0, max_queue: int = 1000,
               limits: Limits = Limits(), extra_routes: Callable[[Gateway], list] | None = None) -> Starlette:
    """The ASGI app around a row predictor: its route, /health, /info and the page to try it (GET /).

    `extra_routes(gateway)` adds routes that read rows and answer through the same limits and queue: the
    assistant's POST /reply (promptlab.apply.assist_routes)."""
    batcher = MicroBatcher(service.answer, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue)
    max_rows = min(limits.max_rows, max_queue)

    async def read_rows(request: Request, fields: frozenset[str] = service.fields) -> list[dict]:
        body = await read_body(request, limits.max_body_bytes, discard_s=limits.deadline_s)
        rows = check_payload(body, fields, max_rows, limits.max_text_chars)
        check_rows(rows, service, limits.max_spans)
        return rows

    async def answer(request: Request) -> dict:
        rows = await read_rows(request)
        return {"predictions": await asyncio.wait_for(batcher.submit(rows), limits.deadline_s)}

    async def health(request: Request) -> JSONResponse:
        if not batcher.running:
            return JSONResponse({"status": "stopped"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def info_route(request: Request) -> JSONResponse:
        return JSONResponse({**service.info, "fields": sorted(service.fields), "max_batch": max_batch,
                             "max_wait_ms": max_wait_ms, "max_queue": max_queue, **limits.describe(),
                             "max_rows": max_rows, "waiting": batcher.waiting,
                             "batches": batcher.batches})

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        await batcher.stop()

    def endpoint(handle: Callable[[Request], Awaitable[dict]]) -> Callable:
        return json_endpoint(handle, max_queue=max_queue, limits=limits)

    extra = extra_routes(Gateway(read_rows, batcher.submit, endpoint, limits)) if extra_routes else []
    return Starlette(routes=[Route(service.route, endpoint(answer), methods=["POST"]), Route("/health", health),
                             Route("/info", info_route), page_route(), *extra], lifespan=lifespan)
