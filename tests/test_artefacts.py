"""Trained artefacts: every method saves one, it reloads to the same predictions, and mismatches are refused."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open

from promptlab.methods.artefacts import (
    METADATA_FILE,
    WEIGHTS_FILE,
    Trained,
    check_compatible,
    load_trained,
    save_trained,
    trained_identity,
)
from promptlab.apply.registry import APPLIERS, open_classifier
from promptlab.catalog.catalog import Catalog, Setup
from promptlab.cli import main
from promptlab.errors import UserError
from promptlab.methods import methods_of, run_method
from promptlab.backends.models import load_model
from promptlab.runtime.outputs import write_json
from promptlab.kinds import task_examples


@pytest.fixture(scope="module")
def catalog(toy_catalog_dir) -> Catalog:
    return Catalog.from_options([toy_catalog_dir])


@pytest.fixture(scope="module")
def setup(catalog) -> Setup:
    return Setup.load(catalog, "toy", "t1")


@pytest.fixture(scope="module")
def loaded(sensitive_gpt2_dir):
    return load_model(str(sensitive_gpt2_dir), device="cpu", dtype="float32")  # predictions compared exactly


METHOD_OPTIONS = {"softprompt": {"steps": 2, "lr": 0.3, "prompt_length": 3}, "finetune": {"steps": 2, "lr": 1e-3},
                  "lora": {"steps": 2, "lr": 1e-2},
                  "finetune-head": {"steps": 2}, "icl": {"per_class": 2}, "icl-similar": {"selection": "similar"},
                  "head": {"c_values": [0.1, 1.0]}, "majority": {},
                  "setfit": {"loss": "cosine", "num_iterations": 1, "steps": 2, "batch_size": 8}}


def test_every_method_has_an_applier_and_options_here():
    assert set(methods_of("classification")) == set(APPLIERS) and set(APPLIERS) <= set(METHOD_OPTIONS)


@pytest.mark.parametrize("variant", list(METHOD_OPTIONS))
def test_every_method_reloads_to_its_own_test_predictions(variant, tmp_path, setup, loaded):
    method = variant.split("-similar")[0]
    test = task_examples(setup.task, "test")
    # setfit fine-tunes a sentence encoder: the tiny model's folder serves as one
    options = {**METHOD_OPTIONS[variant], **({"encoder": loaded.source} if method == "setfit" else {})}
    result = run_method(method, setup=setup, loaded=loaded, train_pool=task_examples(setup.task, "train"),
                        test_examples=test, k=4, seed=13, options=options, save_to=tmp_path / "seed-13")
    saved = load_trained(result["artifact"])
    assert saved.method == method and saved.metadata["test"]["accuracy"] == result["accuracy"]
    assert saved.metadata["sample_checksum"] == result["sample"]["checksum"]
    opened = open_classifier(setup, saved, model=None, device="cpu")
    # an encoder method reloads its own encoder, even though the scoring LM was loaded for its run
    assert opened.loaded.kind == ("encoder" if method == "setfit" else loaded.kind)
    predicted = [setup.task.labels[i] for i in opened.classifier.logprobs(test).argmax(-1).tolist()]
    assert predicted == [row["predicted"] for row in result["predictions"]]
    # the position of an example decides random demonstrations only; a shifted input keeps the rest
    shifted = opened.classifier.logprobs(test[3:], positions=range(3, len(test))).argmax(-1).tolist()
    assert [setup.task.labels[i] for i in shifted] == predicted[3:]


def test_saved_files_are_json_and_safetensors_never_pickles(tmp_path, setup, loaded):
    result = run_method("finetune-head", setup=setup, loaded=loaded, train_pool=task_examples(setup.task, "train"),
                        test_examples=task_examples(setup.task, "test"), k=2, seed=21, options={"steps": 1},
                        save_to=tmp_path / "run")
    folder = tmp_path / "run"
    metadata = json.loads((folder / METADATA_FILE).read_text())
    assert metadata["format"] == "promptlab-trained/1" and metadata["method"] == "finetune-head"
    assert {"model", "model_fingerprint", "task", "template", "template_hash", "verbalizer", "verbalizer_hash",
            "seed", "k", "sample", "training", "test"} <= set(metadata)
    with safe_open(folder / WEIGHTS_FILE, framework="pt") as file:
        assert sorted(file.keys()) == ["head.bias", "head.weight"]
    files = {path.name for path in (folder / "model").iterdir()}
    assert "model.safetensors" in files and not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    assert result["artifact"] == str(folder)


def saved_prompt(tmp_path, setup, loaded) -> str:
    trained = Trained("softprompt", tensors={"prompt_embeddings": torch.randn(3, loaded.model.config.hidden_size)},
                      scoring={"calibrate": "none", "aggregate": "logsumexp"})
    return str(save_trained(tmp_path / "prompt", trained, {**trained_identity(setup, loaded), "seed": 13}))


def test_loading_refuses_broken_folders(tmp_path, setup, loaded):
    with pytest.raises(UserError, match="does not exist"):
        load_trained(tmp_path / "missing")
    with pytest.raises(UserError, match="no trained.json"):
        load_trained(tmp_path)
    folder = tmp_path / "prompt"
    saved_prompt(tmp_path, setup, loaded)
    (folder / WEIGHTS_FILE).write_bytes(b"not a tensor file")
    with pytest.raises(UserError, match="cannot read the artefact weights"):
        load_trained(folder)
    (folder / METADATA_FILE).write_text('{"format": "other", "method": "softprompt"}')
    with pytest.raises(UserError, match="not a promptlab trained artefact"):
        load_trained(folder)


def test_a_soft_prompt_folder_of_the_earlier_format_still_loads(tmp_path, setup, loaded):
    from safetensors.torch import save_file
    folder = tmp_path / "legacy"
    folder.mkdir()
    embeddings = torch.randn(2, loaded.model.config.hidden_size)
    save_file({"prompt_embeddings": embeddings}, folder / "soft_prompt.safetensors")
    write_json(folder / "soft_prompt.json", {"format": "promptlab-soft-prompt/1", **trained_identity(setup, loaded),
                                             "scoring": {"calibrate": "none", "aggregate": "logsumexp"}})
    saved = load_trained(folder)
    assert saved.method == "softprompt" and torch.equal(saved.tensors["prompt_embeddings"], embeddings)


def test_refuses_another_model_naming_both_fingerprints(tmp_path, setup, loaded, tiny_llama_dir):
    saved = load_trained(saved_prompt(tmp_path, setup, loaded))
    with pytest.raises(UserError) as error:
        open_classifier(setup, saved, model=str(tiny_llama_dir), device="cpu")
    llama = load_model(str(tiny_llama_dir), device="cpu")
    assert loaded.fingerprint in error.value.message and llama.fingerprint in error.value.message


def test_refuses_another_template_or_a_changed_verbalizer(tmp_path, catalog, setup, loaded):
    saved = load_trained(saved_prompt(tmp_path, setup, loaded))
    with pytest.raises(UserError, match="trained with template 't1', this run uses 't2'") as error:
        check_compatible(saved, setup=Setup.load(catalog, "toy", "t2"))
    assert "--template t1" in error.value.message
    changed = Setup(setup.task, setup.template, setup.verbalizer.__class__(
        name=setup.verbalizer.name, task="toy", path=setup.verbalizer.path, words={"negative": ("bad",),
                                                                                  "positive": ("good",)}))
    with pytest.raises(UserError, match="verbalizer 'default' changed since it was trained"):
        check_compatible(saved, setup=changed)


def test_calibration_flags_are_refused_for_a_head(tmp_path, setup, loaded):
    run_method("majority", setup=setup, loaded=loaded, train_pool=task_examples(setup.task, "train"),
               test_examples=task_examples(setup.task, "test"), k=2, seed=13, options={}, save_to=tmp_path / "m")
    with pytest.raises(UserError, match="--calibrate do\\(es\\) not apply to method 'majority'"):
        open_classifier(setup, load_trained(tmp_path / "m"), model=None, calibrate="pmi")


def test_trained_show_prints_what_is_inside(tmp_path, setup, loaded):
    folder = saved_prompt(tmp_path, setup, loaded)
    result = CliRunner().invoke(main, ["trained", "show", folder])
    assert result.exit_code == 0, result.output
    assert "method      softprompt" in result.output and "prompt_embeddings [3, 32]" in result.output
    assert f"fingerprint {loaded.fingerprint}" in result.output and "template    t1" in result.output
    missing = CliRunner().invoke(main, ["trained", "show", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


# ---------------------------------------------------------------- a folder is written whole, or not at all

def fewshot_into(catalog_dir, model_dir, output, method, *extra, exit_code=0):
    result = CliRunner().invoke(main, ["fewshot", "--catalog", str(catalog_dir), "--task", "toy", "--template", "t1",
                                       "--k", "4", "--seeds", "13", "--model", str(model_dir), "--method", method,
                                       "--steps", "2", "--lr", "0.3" if method == "softprompt" else "0.001",
                                       "--output", str(output), *extra])
    assert result.exit_code == exit_code, result.output
    return result


def predict_with(catalog_dir, trained, rows, output) -> str:
    result = CliRunner().invoke(main, ["predict", "--catalog", str(catalog_dir), "--trained", str(trained),
                                       "--input", str(rows), "--output", str(output)])
    assert result.exit_code == 0, result.output
    return output.read_text()


def test_a_second_method_into_the_same_folder_is_refused_or_replaces_it_whole(toy_catalog_dir, sensitive_gpt2_dir,
                                                                             setup, tmp_path):
    shared, fresh = tmp_path / "shared", tmp_path / "fresh"
    fewshot_into(toy_catalog_dir, sensitive_gpt2_dir, shared, "finetune")
    assert (shared / "seed-13" / "model" / "config.json").is_file()
    refused = fewshot_into(toy_catalog_dir, sensitive_gpt2_dir, shared, "softprompt", exit_code=2)
    assert "already holds a finetune artefact" in refused.output and "--overwrite" in refused.output
    assert "zero-shot" not in refused.output  # refused before any model loads or trains
    assert load_trained(shared / "seed-13").method == "finetune"
    fewshot_into(toy_catalog_dir, sensitive_gpt2_dir, shared, "softprompt", "--overwrite")
    fewshot_into(toy_catalog_dir, sensitive_gpt2_dir, fresh, "softprompt")
    assert sorted(path.name for path in (shared / "seed-13").iterdir()) == \
        sorted(path.name for path in (fresh / "seed-13").iterdir())
    assert not (shared / "seed-13" / "model").exists()
    rows = tmp_path / "rows.jsonl"
    test = task_examples(setup.task, "test")
    rows.write_text("".join(json.dumps({"text": example["text"]}) + "\n" for example in test))
    assert predict_with(toy_catalog_dir, shared / "seed-13", rows, tmp_path / "shared.jsonl") == \
        predict_with(toy_catalog_dir, fresh / "seed-13", rows, tmp_path / "fresh.jsonl")


def test_saving_into_a_filled_folder_is_refused(tmp_path, setup, loaded):
    folder = tmp_path / "prompt"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="already holds files") as error:
        saved_prompt(tmp_path, setup, loaded)
    assert "--overwrite" in error.value.message and (folder / "notes.txt").read_text() == "mine"


def test_a_crash_while_saving_leaves_no_folder_and_no_staging(tmp_path, setup, loaded):
    def crash(folder):
        (folder / "half.bin").write_bytes(b"\0" * 10)
        raise KeyboardInterrupt

    trained = Trained("softprompt", tensors={"prompt_embeddings": torch.zeros(2, 32)}, write_files=crash)
    with pytest.raises(KeyboardInterrupt):
        save_trained(tmp_path / "seed-13", trained, trained_identity(setup, loaded))
    assert list(tmp_path.iterdir()) == []


def test_a_model_folder_that_trained_json_does_not_declare_is_never_loaded(tmp_path, setup, loaded, tiny_gpt2_dir):
    import shutil
    folder = saved_prompt(tmp_path, setup, loaded)
    test = task_examples(setup.task, "test")
    before = open_classifier(setup, load_trained(folder), model=None, device="cpu").classifier.logprobs(test)
    shutil.copytree(tiny_gpt2_dir, tmp_path / "prompt" / "model")  # another model, not declared
    saved = load_trained(folder)
    assert saved.model_folder is None
    opened = open_classifier(setup, saved, model=None, device="cpu")
    assert opened.loaded.fingerprint == loaded.fingerprint
    assert torch.equal(opened.classifier.logprobs(test), before)


def test_a_model_copy_swapped_for_other_weights_is_refused(tmp_path, setup, loaded, tiny_gpt2_dir):
    import shutil
    run_method("finetune", setup=setup, loaded=loaded, train_pool=task_examples(setup.task, "train"),
               test_examples=task_examples(setup.task, "test"), k=2, seed=13, options={"steps": 1},
               save_to=tmp_path / "seed-13")
    saved = load_trained(tmp_path / "seed-13")
    assert saved.metadata["model_copy_fingerprint"] != loaded.fingerprint  # it trained: the copy differs
    open_classifier(setup, saved, model=None, device="cpu")  # its own copy loads
    shutil.rmtree(tmp_path / "seed-13" / "model")
    shutil.copytree(tiny_gpt2_dir, tmp_path / "seed-13" / "model")
    with pytest.raises(UserError, match="holds another run's model") as error:
        open_classifier(setup, load_trained(tmp_path / "seed-13"), model=None, device="cpu")
    assert saved.metadata["model_copy_fingerprint"] in error.value.message


def test_a_setfit_encoder_swapped_for_other_weights_is_refused(tmp_path, setup, loaded, tiny_bert_dir):
    import shutil
    from promptlab.backends.sentence_encoders import ENCODER_FOLDER, load_encoder
    options = {**METHOD_OPTIONS["setfit"], "encoder": loaded.source}
    run_method("setfit", setup=setup, loaded=loaded, train_pool=task_examples(setup.task, "train"),
               test_examples=task_examples(setup.task, "test"), k=4, seed=13, options=options,
               save_to=tmp_path / "seed-13")
    saved = load_trained(tmp_path / "seed-13")
    assert saved.state["encoder_copy_fingerprint"] != saved.state["encoder_fingerprint"]  # it trained
    shutil.rmtree(tmp_path / "seed-13" / ENCODER_FOLDER)
    load_encoder(str(tiny_bert_dir), device="cpu").save(tmp_path / "seed-13" / ENCODER_FOLDER)
    with pytest.raises(UserError, match="is not the encoder this head was trained with") as error:
        open_classifier(setup, load_trained(tmp_path / "seed-13"), model=None, device="cpu")
    assert saved.state["encoder_copy_fingerprint"] in error.value.message
