"""GET /: one self-contained HTML page to try a served model (promptlab/apply/static/assistant.html).

The page reads GET /info to learn what the server answers: the assistant's POST /reply (the reply
as a customer sees it, the path taken, the passages with their scores, and the intent probabilities
from POST /classify as bars), a text classifier's POST /classify, or an entity tagger's POST
/entities (the text with its entities highlighted). No external assets and no build step, so it
works offline.
"""
from __future__ import annotations

from importlib.resources import files

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

PAGE = files("promptlab.apply").joinpath("static/assistant.html")


def page_route() -> Route:
    html = PAGE.read_text(encoding="utf-8")

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(html)

    return Route("/", page, methods=["GET"])
