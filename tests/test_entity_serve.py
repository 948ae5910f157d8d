"""`promptlab serve` on an entity task: a real server on 127.0.0.1 with a tiny token-finetune model answers raw
text rows with the spans `promptlab predict` writes for the same rows."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from entity_files import TYPES, catalog, one_thread, tagger_artefact  # noqa: F401 (fixtures)
from serving import Server, call, post

from promptlab.cli import main

pytest.importorskip("uvicorn")
pytest.importorskip("starlette")

TEXTS = ["i love World and Tech News", "Story was about Business, not Science.", "no names here", "",
         "Acting in the World of Tech"]


@pytest.fixture(scope="module")
def server(catalog, tagger_artefact):
    started = Server("--trained", tagger_artefact, "--catalog", catalog)  # no --task: the artefact names it
    yield started
    started.stop()


def test_served_spans_are_what_predict_writes(server, catalog, tagger_artefact, tmp_path):
    rows = [{"text": text, "ref": i} for i, text in enumerate(TEXTS)]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = CliRunner().invoke(main, ["predict", "--trained", str(tagger_artefact), "--catalog", str(catalog),
                                       "--input", str(tmp_path / "rows.jsonl"),
                                       "--output", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 0, result.output
    expected = [json.loads(line)["entities"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert any(expected)  # the tiny model finds entities, so the comparison compares something
    status, body = post(f"{server.base}/entities", rows[:2])  # two requests, as a client would split them
    status_rest, body_rest = post(f"{server.base}/entities", rows[2:])
    assert (status, status_rest) == (200, 200), (body, body_rest)
    served = [prediction["entities"] for prediction in body["predictions"] + body_rest["predictions"]]
    assert len(served) == len(TEXTS)
    for got, want in zip(served, expected):
        assert [{key: span[key] for key in ("start", "end", "type", "text")} for span in got] == \
            [{key: span[key] for key in ("start", "end", "type", "text")} for span in want]
        assert [span["score"] for span in got] == pytest.approx([span["score"] for span in want], abs=1e-5)
        assert all(span["type"] in TYPES for span in got)
    status, info = call(f"{server.base}/info")
    assert status == 200 and info["task"] == "tweetner" and info["method"] == "token-finetune"
    assert info["trained"] == str(tagger_artefact) and info["types"] == list(TYPES) and info["fields"] == ["text"]


@pytest.mark.parametrize("body, status, message", [
    (b'{"inputs": [{"txt": "World"}]}', 422, "inputs[0] has no field 'text'"),
    (b'{"inputs": []}', 422, "is empty"),
])
def test_bad_payloads_get_a_4xx_and_the_server_keeps_serving(server, body, status, message):
    got, answer = call(f"{server.base}/entities", body)
    assert got == status and message in answer["error"]
    assert call(f"{server.base}/health")[0] == 200


def test_serve_refuses_flags_of_text_classifiers(catalog, tagger_artefact):
    result = CliRunner().invoke(main, ["serve", "--trained", str(tagger_artefact), "--catalog", str(catalog),
                                       "--reject-below", "0.5", "--port", "1"])
    assert result.exit_code == 2 and "--reject-below does not apply to entity task 'tweetner'" in result.output


def test_trained_show_leaves_out_the_template_a_token_classifier_has_not(tagger_artefact):
    result = CliRunner().invoke(main, ["trained", "show", str(tagger_artefact)])
    assert result.exit_code == 0, result.output
    assert "method      token-finetune" in result.output and "template" not in result.output
    assert "None" not in result.output


@pytest.mark.parametrize("prior", [[], ["--calibrate-on", "ROWS"]])
def test_serve_refuses_batch_calibration_on_an_entity_task_before_any_model_loads(catalog, tmp_path, prior):
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"text": "World news"}\n')
    result = CliRunner().invoke(main, ["serve", "--task", "tweetner", "--catalog", str(catalog), "--calibrate", "batch",
                                       "--model", str(tmp_path / "never-loaded"),
                                       *[str(rows) if part == "ROWS" else part for part in prior]])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "batch calibration does not apply to predict or serve on entity task 'tweetner'" in result.output
    assert "pass --calibrate contextual (or none)" in result.output
