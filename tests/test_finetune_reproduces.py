"""A fine-tuned model scores its test split with exactly what it saves: `zeroshot --trained` in the same dtype
gives the test predictions `fewshot` wrote and the accuracy trained.json records, in bfloat16 as in float32."""
from __future__ import annotations

import json

import pytest

from cli_run import invoke


def predictions(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_finetune_reloads_to_its_own_test_probabilities(dtype, toy_catalog_dir, sensitive_gpt2_dir, tmp_path):
    common = ["--catalog", toy_catalog_dir, "--task", "toy", "--template", "t1", "--model", sensitive_gpt2_dir,
              "--dtype", dtype, "--device", "cpu"]
    invoke("fewshot", *common, "--method", "finetune", "--k", 4, "--seeds", 13, "--steps", 3, "--lr", 1e-3,
           "--output", tmp_path / "trained")
    invoke("zeroshot", *common[:-6], "--trained", tmp_path / "trained" / "seed-13", "--dtype", dtype, "--device",
           "cpu", "--output", tmp_path / "reloaded")
    trained = predictions(tmp_path / "trained" / "seed-13" / "predictions.jsonl")
    reloaded = predictions(tmp_path / "reloaded" / "predictions.jsonl")
    assert len(trained) == len(reloaded) > 0
    assert [(row["id"], row["predicted"]) for row in reloaded] == [(row["id"], row["predicted"]) for row in trained]
    metadata = json.loads((tmp_path / "trained" / "seed-13" / "trained.json").read_text())
    metrics = json.loads((tmp_path / "reloaded" / "metrics.json").read_text())
    assert metrics["accuracy"] == metadata["test"]["accuracy"]
