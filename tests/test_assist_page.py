"""The page of `serve` (GET /) on an entity task, in headless Chromium: the text with its entities highlighted,
the very spans POST /entities answers for it."""
from __future__ import annotations

import html
import re
import urllib.parse

import pytest
from browser import needs_browser, rendered_dom
from entity_files import catalog, fewshot_run  # noqa: F401 (fixtures)
from serving import Server, post

pytest.importorskip("uvicorn")
TEXT = "i love World and Tech News about Business"


@pytest.fixture(scope="module")
def server(catalog, tiny_bert_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("ner-page")
    fewshot_run(catalog, tiny_bert_dir, output, "--method", "token-finetune", "--k", 3, "--seeds", 13,
                "--steps", 40, "--lr", 3e-3)
    started = Server("--trained", output / "seed-13", "--catalog", catalog)
    yield started
    started.stop()


@needs_browser
def test_the_page_highlights_the_entities_that_post_entities_finds(server, tmp_path):
    status, answer = post(f"{server.base}/entities", [{"text": TEXT}])
    entities = answer["predictions"][0]["entities"]
    assert status == 200 and entities, "the tiny tagger found no entity to show"
    dom = rendered_dom(f"{server.base}/?" + urllib.parse.urlencode({"message": TEXT}), tmp_path / "profile")
    marked = re.findall(r"<mark[^>]*>(.*?)<small>(.*?)</small></mark>", dom)
    assert [(html.unescape(text), kind) for text, kind in marked] == [(e["text"], e["type"]) for e in entities]
    reply = re.search(r'<div id="reply"[^>]*>(.*?)</div>', dom, re.DOTALL).group(1)
    assert re.sub(r"<small>.*?</small>|<[^>]+>", "", html.unescape(reply)) == TEXT
