"""`promptlab fewshot` and `promptlab zeroshot --trained` through the real CLI, on tiny models."""
from __future__ import annotations

import json

import pytest
from catalog_files import write_catalog
from fewshot_toys import TOY_FILES, sensitive_model

from cli_run import invoke, last_json

REQUIRED = {"task", "k", "method", "model", "seeds", "per_seed", "accuracy_mean", "accuracy_std",
            "zero_shot_accuracy", "seconds"}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return write_catalog(tmp_path_factory.mktemp("toy-catalog"), TOY_FILES)


@pytest.fixture(scope="module")
def model(tiny_gpt2_dir, tmp_path_factory):
    return sensitive_model(tiny_gpt2_dir, tmp_path_factory.mktemp("sensitive-gpt2"))


@pytest.fixture(scope="module")
def trained(catalog, model, tmp_path_factory):
    """One softprompt run over two seeds, saved: (summary, output folder)."""
    out = tmp_path_factory.mktemp("fewshot-out")
    result = invoke("fewshot", "--catalog", catalog, "--task", "toy", "--template", "t1", "--k", 4, "--seeds", "13,21",
                    "--model", model, "--steps", 3, "--lr", 0.3, "--prompt-length", 4, "--output", out, "--json")
    assert "zero-shot (contextual calibration)" in result.stdout and "seed   13: accuracy" in result.stdout
    return last_json(result), out


def test_fewshot_reports_per_seed_mean_std_and_zero_shot(trained, catalog, model):
    summary, _ = trained
    assert REQUIRED <= set(summary)
    assert summary["method"] == "softprompt" and summary["k"] == 4 and summary["seeds"] == [13, 21]
    assert summary["model"] == str(model) and summary["n"] == 10
    accuracies = [run["accuracy"] for run in summary["per_seed"]]
    assert summary["accuracy_mean"] == pytest.approx(sum(accuracies) / 2)
    assert summary["accuracy_std"] == pytest.approx(abs(accuracies[0] - accuracies[1]) / 2)
    assert [run["train_steps"] for run in summary["per_seed"]] == [3, 3]
    assert summary["options"]["steps"] == 3 and summary["options"]["prompt_length"] == 4
    zero_shot = last_json(invoke("zeroshot", "--catalog", catalog, "--task", "toy", "--template", "t1", "--model",
                                 model, "--calibrate", "contextual", "--json"))
    assert summary["zero_shot_accuracy"] == zero_shot["accuracy"]  # the same test split, zero-shot
    assert summary["per_seed"][0]["sample"]["checksum"] != summary["per_seed"][1]["sample"]["checksum"]


def test_fewshot_output_holds_summary_predictions_and_prompts(trained):
    summary, out = trained
    assert json.loads((out / "fewshot.json").read_text())["accuracy_mean"] == summary["accuracy_mean"]
    for seed in (13, 21):
        rows = (out / f"seed-{seed}" / "predictions.jsonl").read_text().splitlines()
        assert len(rows) == 10 and set(json.loads(rows[0])) == {"id", "gold", "predicted"}
        metadata = json.loads((out / f"seed-{seed}" / "trained.json").read_text())
        assert metadata["method"] == "softprompt" and metadata["seed"] == seed
        assert metadata["tensors"] == {"prompt_embeddings": [4, 32]} and metadata["training"]["steps"] == 3
        assert metadata["test"]["accuracy"] == summary["per_seed"][[13, 21].index(seed)]["accuracy"]


def test_zeroshot_with_the_saved_prompt_reproduces_its_accuracy(trained, catalog, model):
    summary, out = trained
    result = invoke("zeroshot", "--catalog", catalog, "--task", "toy", "--model", model,
                    "--trained", out / "seed-13", "--json")
    assert last_json(result)["accuracy"] == summary["per_seed"][0]["accuracy"]
    assert last_json(result)["calibrate"] == "none"  # as trained, since --calibrate was left out
    assert last_json(result)["template"] == "t1"  # the artefact's, since --template was left out
    assert "trained softprompt" in result.stdout
    deprecated = invoke("zeroshot", "--catalog", catalog, "--task", "toy", "--prompt", out / "seed-13", "--json")
    assert last_json(deprecated)["accuracy"] == summary["per_seed"][0]["accuracy"]
    assert "--prompt is deprecated" in deprecated.stderr
    explicit = invoke("zeroshot", "--catalog", catalog, "--task", "toy", "--template", "t1", "--model", model,
                      "--trained", out / "seed-13", "--calibrate", "pmi", "--json")
    assert last_json(explicit)["calibrate"] == "pmi"


def test_zeroshot_refuses_a_prompt_for_another_template(trained, catalog, model):
    _, out = trained
    result = invoke("zeroshot", "--catalog", catalog, "--task", "toy", "--template", "t2", "--model", model,
                    "--trained", out / "seed-13", exit_code=2)
    assert "trained with template 't1', this run uses 't2'" in result.output and "--template t1" in result.output


def test_zeroshot_refuses_a_prompt_for_another_model(trained, catalog, tiny_gpt2_dir):
    _, out = trained
    result = invoke("zeroshot", "--catalog", catalog, "--task", "toy", "--template", "t1", "--model", tiny_gpt2_dir,
                    "--trained", out / "seed-13", exit_code=2)
    assert "weights fingerprint" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("method", ["majority", "head", "icl"])
def test_other_methods_run_from_the_same_command_line(catalog, model, method):
    result = invoke("fewshot", "--catalog", catalog, "--task", "toy", "--template", "t1", "--k", 2,
                    "--seeds", "13,21,42", "--model", model, "--method", method, "--limit", 6, "--json")
    summary = last_json(result)
    assert summary["method"] == method and summary["n"] == 6 and len(summary["per_seed"]) == 3
    assert all(run["train_steps"] == 0 for run in summary["per_seed"])


@pytest.mark.parametrize("args, message", [
    (["--k", 50], "label 'negative' has 20 training example(s), but k=50 needs 100"),
    (["--method", "icl", "--lr", 0.1], "--lr does not apply to --method icl"),
    (["--seeds", "13,x"], "--seeds must be comma-separated integers"),
    (["--template", "t9"], "unknown template of task 'toy' 't9'"),
    (["--method", "lora", "--option", "rank=0"], "option rank must be a positive number"),
    (["--method", "lora", "--option", "rank"], "--option 'rank' is not NAME=VALUE"),
    (["--method", "lora", "--option", "ranks=4"], "method 'lora' has no option 'ranks'"),
    (["--method", "lora", "--option", "save_to=x"], "--option save_to is set by --output"),
])
def test_mistakes_fail_before_the_model_loads(catalog, tmp_path, args, message):
    result = invoke("fewshot", "--catalog", catalog, "--task", "toy", "--template", "t1", "--model",
                    tmp_path / "no-such-model", *args, exit_code=2)
    assert message in result.output and "Traceback" not in result.output


def test_several_templates_need_a_choice(catalog):
    result = invoke("fewshot", "--catalog", catalog, "--task", "toy", exit_code=2)
    assert "several templates and names no default" in result.output and "--template t1|t2" in result.output


def test_icl_on_a_masked_lm_is_a_clear_error(catalog, tiny_bert_dir):
    result = invoke("fewshot", "--catalog", catalog, "--task", "toy", "--template", "t1", "--k", 2, "--seeds", 13,
                    "--model", tiny_bert_dir, "--method", "icl", exit_code=2)
    assert "icl needs a causal model" in result.output
