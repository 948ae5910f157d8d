"""POST /reply: the assistant behind `serve --answers NAME --knowledge PATH`.

    POST /reply  {"inputs": [{"text": "...", "name": "...", ...}]}  ->  {"replies": [{path, intent, probability,
                 answer, passages, reason}, ...]}   (promptlab.apply.assist)

The router's probabilities come through the server's micro-batching queue (the same batches as
POST /classify); the answers are then rendered and the knowledge base searched on one worker
thread of its own, at most `max_queue` rows at a time (503 beyond). A row lacking a field its
answer reads is a 422 naming the field; nothing is half answered. Its body and rows are read under
the server's limits and its failures answered as POST /classify's are (promptlab.apply.serve.Gateway).
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from starlette.requests import Request
from starlette.routing import Route

from promptlab.apply.assist import Assistant
from promptlab.apply.serve import Gateway, QueueFull

ROUTE = "/reply"


def reply_routes(assistant: Assistant, fields: frozenset[str], *, max_queue: int) -> Callable[[Gateway], list[Route]]:
    """For create_app(extra_routes=...): POST /reply, its rows read under the server's limits and answered through
    its queue, failures answered as the server's own (a 500 tells only a request id)."""
    executor = ThreadPoolExecutor(1, "promptlab-assistant")
    waiting = 0  # rows between the router and their replies

    def routes(gateway: Gateway) -> list[Route]:
        async def reply(request: Request) -> dict:
            nonlocal waiting
            rows = await gateway.read_rows(request, fields)
            if waiting + len(rows) > max_queue:
                raise QueueFull
            waiting += len(rows)
            try:
                return {"replies": await asyncio.wait_for(_replies(gateway, rows), gateway.limits.deadline_s)}
            finally:
                waiting -= len(rows)

        async def _replies(gateway: Gateway, rows: list[dict]) -> list[dict]:
            predictions = await gateway.submit(rows)
            return await asyncio.get_running_loop().run_in_executor(
                executor, _reply, assistant, rows, [p["probabilities"] for p in predictions])

        return [Route(ROUTE, gateway.endpoint(reply), methods=["POST"])]

    return routes


def _reply(assistant: Assistant, rows: list[dict], probabilities: list[dict]) -> list[dict]:
    return assistant.reply(rows, probabilities, where=[f" inputs[{index}]" for index in range(len(rows))])
