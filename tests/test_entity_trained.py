"""Trained entity artefacts applied again: `zeroshot --trained` reproduces the F1 `fewshot` reported for the seed
(token-finetune and entity-prompt), the task coming from the artefact; mistakes are one message."""
from __future__ import annotations

import json

import pytest
from cli_run import invoke
from entity_files import catalog, fewshot_run, one_thread  # noqa: F401 (fixtures)


@pytest.mark.parametrize("method, model, options", [
    ("token-finetune", "tiny_bert_dir", ["--steps", 40, "--lr", 3e-3]),
    ("entity-prompt", "tiny_gpt2_dir", ["--steps", 3]),
])
def test_zeroshot_trained_reproduces_the_fewshot_f1(catalog, tmp_path, request, method, model, options):
    summary = fewshot_run(catalog, request.getfixturevalue(model), tmp_path, "--method", method, "--k", 3,
                          "--seeds", "13,21", *options)
    for run in summary["per_seed"]:
        applied = invoke("zeroshot", "--trained", tmp_path / f"seed-{run['seed']}", "--catalog", catalog,
                         "--output", tmp_path / f"applied-{run['seed']}", "--json")  # no --task: the artefact's
        result = json.loads(applied.stdout.strip().splitlines()[-1])
        assert result["f1"] == run["f1"] and result["precision"] == run["precision"]
        assert result["task"] == "tweetner" and result["method"] == method and result["n"] == summary["n"]
        assert result["trained"] == str(tmp_path / f"seed-{run['seed']}")
        assert (tmp_path / f"applied-{run['seed']}/spans.jsonl").read_text() == \
            (tmp_path / f"seed-{run['seed']}/spans.jsonl").read_text()
    assert "F1" in applied.output and "micro" in applied.output


def test_trained_mistakes_are_one_message(catalog, tiny_bert_dir, tmp_path):
    fewshot_run(catalog, tiny_bert_dir, tmp_path, "--method", "token-finetune", "--k", 2, "--seeds", 13,
                "--steps", 2)
    for args, message in [
        (["--template", "t1"], "--template does not apply to a token-finetune model"),
        (["--reject-below", 0.5], "--reject-below does not apply to entity task 'tweetner'"),
    ]:
        result = invoke("zeroshot", "--task", "tweetner", "--trained", tmp_path / "seed-13", "--catalog", catalog,
                        *args, exit_code=2)
        assert message in result.output and "Traceback" not in result.output
