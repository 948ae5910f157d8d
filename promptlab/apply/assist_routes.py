"""POST /reply: the assistant behind `serve --answers NAME --knowledge PATH`.

    POST /reply  {"inputs": [{"text": "...", "name": "...", ...}]}  ->  {"replies": [{path, intent, probability,
                 answer, passages, reason}, ...]}   (promptlab.apply.assist)

The router's probabilities come through the server's micro-batching queue (the same batches as
POST /classify); the answers are then rendered and the knowledge base searched on one worker
thread of its own, at most `max_queue` rows at a time (503 beyond). A row lacking a field its
answer reads is a 422 naming the field; nothing is half answered.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from promptlab.apply.assist import Assistant
from promptlab.apply.serve import BadInput, QueueFull, check_payload
from promptlab.errors import UserError

ROUTE = "/reply"


def reply_routes(assistant: Assistant, fields: frozenset[str], *, max_queue: int
                 ) -> Callable[[Callable], list[Route]]:
    """For create_app(extra_routes=...): POST /reply answered through the server's queue `submit`."""
    executor = ThreadPoolExecutor(1, "promptlab-assistant")
    waiting = 0  # rows between the router and their replies

    def routes(submit: Callable) -> list[Route]:
        async def reply_route(request: Request) -> JSONResponse:
            nonlocal waiting
            try:
                rows = check_payload(await request.body(), fields, max_queue)
                if waiting + len(rows) > max_queue:
                    raise QueueFull
                waiting += len(rows)
                try:
                    predictions = await submit(rows)
                    replies = await asyncio.get_running_loop().run_in_executor(
                        executor, _reply, assistant, rows, [p["probabilities"] for p in predictions])
                finally:
                    waiting -= len(rows)
            except BadInput as error:
                return JSONResponse({"error": error.message}, status_code=error.status)
            except UserError as error:
                return JSONResponse({"error": error.what + (f" ({error.fix})" if error.fix else "")},
                                    status_code=422)
            except QueueFull:
                return JSONResponse({"error": f"the queue is full ({max_queue} rows waiting); retry shortly"},
                                    status_code=503, headers={"Retry-After": "1"})
            except Exception as error:  # noqa: BLE001 - one failed request is a 500, never a dead server
                return JSONResponse({"error": f"reply failed: {type(error).__name__}: {error}"}, status_code=500)
            return JSONResponse({"replies": replies})

        return [Route(ROUTE, reply_route, methods=["POST"])]

    return routes


def _reply(assistant: Assistant, rows: list[dict], probabilities: list[dict]) -> list[dict]:
    return assistant.reply(rows, probabilities, where=[f" inputs[{index}]" for index in range(len(rows))])
