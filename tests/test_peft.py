"""LoRA adapters and soft prompts in PEFT's formats: PEFT loads them and scores as promptlab does."""
from __future__ import annotations

import json

import pytest
import reference_lm
import torch
from catalog_files import write_catalog
from cli_run import invoke
from click.testing import CliRunner
from fewshot_toys import TOY_FILES, sensitive_model

from promptlab.methods.artefacts import Trained, save_trained, trained_identity
from promptlab.backends import make_backend
from promptlab.catalog.catalog import Catalog, Setup
from promptlab.cli import main
from promptlab.errors import UserError
from promptlab.methods import run_method
from promptlab.backends.models import load_model
from promptlab.apply.peft_export import export_soft_prompt
from promptlab.backends.scoring import LabelScorer
from promptlab.kinds import task_examples

peft = pytest.importorskip("peft")


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return write_catalog(tmp_path_factory.mktemp("toy-catalog"), TOY_FILES)


@pytest.fixture(scope="module")
def setup(catalog) -> Setup:
    return Setup.load(Catalog.from_options([catalog]), "toy", "t1")


@pytest.fixture(scope="module")
def llama(tiny_llama_dir, tmp_path_factory):
    # float32: the PEFT reference below runs in float32 and is compared to 1e-5
    return load_model(str(sensitive_model(tiny_llama_dir, tmp_path_factory.mktemp("sensitive-llama"))), device="cpu",
                      dtype="float32")


def _lora(setup, loaded, folder, **options):
    return run_method("lora", setup=setup, loaded=loaded, train_pool=task_examples(setup.task, "train"),
                      test_examples=task_examples(setup.task, "test"), k=4, seed=13,
                      options={"steps": 6, "eval_every": 2, "lr": 0.003, **options}, save_to=folder)


def test_lora_adapter_is_a_peft_folder_that_reproduces_the_test_probabilities(setup, catalog, llama, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    result = _lora(setup, llama, tmp_path / "seed-13")
    assert result["best_step"] > 0  # the kept adapters are trained ones, so reproducing them means something
    folder = tmp_path / "seed-13"
    assert {"adapter_config.json", "adapter_model.safetensors", "trained.json"} <= {p.name for p in folder.iterdir()}
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8 and set(config["target_modules"]) == {"q_proj", "v_proj"}
    meta = json.loads((folder / "trained.json").read_text())
    assert meta["method"] == "lora" and meta["task"] == "toy" and meta["model_fingerprint"] == llama.fingerprint
    # rank 8 adds an 8 x in and an out x 8 matrix to every q_proj and v_proj
    adapted = [module for name, module in llama.model.named_modules() if name.endswith(("q_proj", "v_proj"))]
    assert len(adapted) == 4  # two layers
    assert meta["state"]["trainable_parameters"] == sum(8 * (m.in_features + m.out_features) for m in adapted)
    # A fresh float32 base model with the adapter, loaded by peft alone and scored by a plain loop (reference_lm),
    # gives the run's labels, and the probabilities `zeroshot --trained` reads from the artefact (also float32).
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(llama.source, dtype=torch.float32),
                                           folder).eval()
    base = AutoModelForCausalLM.from_pretrained(llama.source, dtype=torch.float32).eval()
    test = task_examples(setup.task, "test")
    expected = [reference_lm.label_probabilities(peft_model, llama.tokenizer, f"{example['text']} it was",
                                                 reference_lm.TOY_WORDS) for example in test]  # calibrate: none
    untrained = [reference_lm.label_probabilities(base, llama.tokenizer, f"{example['text']} it was",
                                                  reference_lm.TOY_WORDS) for example in test]
    assert [reference_lm.top(want) for want in expected] == [row["predicted"] for row in result["predictions"]]
    invoke("zeroshot", "--trained", folder, "--catalog", catalog, "--dtype", "float32", "--output", tmp_path / "again")
    again = [json.loads(line) for line in (tmp_path / "again" / "predictions.jsonl").read_text().splitlines()]
    assert [row["id"] for row in again] == [example["id"] for example in test]
    for row, want in zip(again, expected):
        assert row["probabilities"] == pytest.approx(want, abs=1e-5)
    # the adapter moves the answers by far more than the tolerance, so the match says it was applied, and right
    assert max(abs(want["positive"] - plain["positive"]) for want, plain in zip(expected, untrained)) > 0.01


def test_lora_options_reach_peft_and_dropout_keeps_runs_repeatable(setup, llama, tmp_path):
    first = _lora(setup, llama, tmp_path / "a", rank=2, alpha=4, dropout=0.2, target_modules="all-linear")
    second = _lora(setup, llama, tmp_path / "b", rank=2, alpha=4, dropout=0.2, target_modules="all-linear")
    config = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert config["r"] == 2 and config["lora_alpha"] == 4 and config["lora_dropout"] == 0.2
    assert {"gate_proj", "down_proj", "o_proj"} <= {name.rsplit(".", 1)[-1] for name in config["target_modules"]}
    assert first["losses"] == second["losses"] and first["predictions"] == second["predictions"]


@pytest.mark.parametrize("options, message", [
    ({"rank": 0}, "rank must be a positive number"),
    ({"dropout": 1.5}, "dropout must be in [0, 1)"),
    ({"target_modules": "nonexistent_proj"}, "cannot add LoRA adapters"),
])
def test_lora_option_mistakes_are_user_errors(setup, llama, tmp_path, options, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        _lora(setup, llama, tmp_path, **options)


def _peft_label_scores(peft_model, tokenizer, prompt, verbalizer) -> torch.Tensor:
    """Label log-probs by feeding PEFT context + word, one sequence per word: an independent slow reference."""
    context = prompt.before.rstrip()
    space = prompt.before[len(context):]
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    label_scores = []
    for words in verbalizer.words.values():
        word_scores = []
        for word in words:
            word_ids = tokenizer(space + word, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([context_ids + word_ids])
            logprobs = peft_model(input_ids=ids).logits[0].log_softmax(-1)  # [virtual + T, V]
            offset = peft_model.peft_config["default"].num_virtual_tokens + len(context_ids) - 1
            word_scores.append(sum(logprobs[offset + i, token] for i, token in enumerate(word_ids)))
        label_scores.append(torch.stack(word_scores).logsumexp(0))
    return torch.stack(label_scores).log_softmax(0)


def test_exported_soft_prompt_gives_promptlab_scores_in_peft(setup, tiny_gpt2_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    source = sensitive_model(tiny_gpt2_dir, tmp_path / "model")
    loaded = load_model(str(source), device="cpu", dtype="float32")  # compared with PEFT to 1e-4: float32
    torch.manual_seed(0)
    embeddings = torch.randn(5, loaded.model.config.hidden_size) * 0.3
    save_trained(tmp_path / "prompt", Trained("softprompt", tensors={"prompt_embeddings": embeddings}),
                 trained_identity(setup, loaded))
    CliRunner().invoke(main, ["trained", "export-peft", str(tmp_path / "prompt"), str(tmp_path / "peft")],
                       catch_exceptions=False)
    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert config["peft_type"] == "PROMPT_TUNING" and config["num_virtual_tokens"] == 5
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(source).eval(), tmp_path / "peft")
    scorer = LabelScorer(make_backend(loaded.model, loaded.tokenizer, "causal", loaded.device), setup.template,
                         setup.verbalizer, soft_prompt=embeddings)
    prompts = [setup.template.render(example) for example in task_examples(setup.task, "test")[:4]]
    with torch.inference_mode():
        ours = scorer.label_logprobs(prompts)
        theirs = torch.stack([_peft_label_scores(peft_model, loaded.tokenizer, prompt, setup.verbalizer)
                              for prompt in prompts])
        without_prompt = LabelScorer(scorer.backend, setup.template, setup.verbalizer).label_logprobs(prompts)
    assert torch.allclose(ours, theirs, atol=1e-4)
    assert not torch.allclose(ours, without_prompt, atol=1e-2)  # the prompt matters, so the match means something


def test_export_refuses_a_model_whose_tokenizer_adds_a_start_token(setup, llama, tmp_path):
    # promptlab writes the prompt after <s>, PEFT before it: the scores would differ, so no export
    save_trained(tmp_path / "prompt", Trained("softprompt", tensors={"prompt_embeddings": torch.zeros(2, 32)}),
                 trained_identity(setup, llama))
    result = CliRunner().invoke(main, ["trained", "export-peft", str(tmp_path / "prompt"), str(tmp_path / "out")])
    assert result.exit_code == 2 and "adds a start token" in result.output
    assert not (tmp_path / "out").exists()


def test_export_refuses_a_masked_lm_prompt(setup, tiny_bert_dir, tmp_path):
    loaded = load_model(str(tiny_bert_dir), device="cpu")
    save_trained(tmp_path / "prompt", Trained("softprompt", tensors={
        "prompt_embeddings": torch.zeros(2, loaded.model.config.hidden_size)}), trained_identity(setup, loaded))
    result = CliRunner().invoke(main, ["trained", "export-peft", str(tmp_path / "prompt"), str(tmp_path / "out")])
    assert result.exit_code == 2 and "no masked-LM task type" in result.output
    assert not (tmp_path / "out").exists()
    with pytest.raises(UserError, match="does not exist"):
        export_soft_prompt(tmp_path / "missing", tmp_path / "out")


def test_fewshot_lora_from_the_command_line_saves_an_adapter_per_seed(setup, tiny_gpt2_dir, tmp_path):
    catalog = write_catalog(tmp_path / "catalog", TOY_FILES)
    result = CliRunner().invoke(main, ["fewshot", "--catalog", str(catalog), "--task", "toy", "--template", "t1",
                                       "--k", "2", "--seeds", "13", "--model", str(tiny_gpt2_dir), "--method", "lora",
                                       "--steps", "2", "--option", "rank=4", "--option", "lr=1e-3", "--limit", "4",
                                       "--output", str(tmp_path / "out"), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["options"]["rank"] == 4 and summary["options"]["lr"] == 0.001
    config = json.loads((tmp_path / "out" / "seed-13" / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["target_modules"] == ["c_attn"]  # peft's choice for GPT-2


HUB_ID = "example-org/tiny-chat"  # a hub model: its files are not a folder here


@pytest.fixture
def hub_stand_in(monkeypatch):
    """Tokenizers of HUB_ID load from a local folder, as from the hub's cache: `use(folder)` picks the folder."""
    from transformers import AutoTokenizer

    real = AutoTokenizer.from_pretrained.__func__
    loaded = []

    def use(folder):
        def from_pretrained(cls, name, *args, **kwargs):
            loaded.append(name)
            return real(cls, str(folder) if name == HUB_ID else name, *args, **kwargs)
        monkeypatch.setattr(AutoTokenizer, "from_pretrained", classmethod(from_pretrained))
        return loaded
    return use


def _hub_prompt(setup, loaded, folder) -> None:
    save_trained(folder, Trained("softprompt", tensors={"prompt_embeddings": torch.zeros(2, 32)}),
                 {**trained_identity(setup, loaded), "model": HUB_ID, "model_source": HUB_ID})


def test_export_checks_the_start_token_of_a_hub_model_too(setup, llama, hub_stand_in, tmp_path):
    loaded = hub_stand_in(llama.source)  # a hub model whose tokenizer adds <s>
    _hub_prompt(setup, llama, tmp_path / "prompt")
    result = CliRunner().invoke(main, ["trained", "export-peft", str(tmp_path / "prompt"), str(tmp_path / "out")])
    assert result.exit_code == 2 and "adds a start token" in result.output, result.output
    assert loaded == [HUB_ID] and not (tmp_path / "out").exists()


def test_a_hub_model_without_a_start_token_exports(setup, tiny_gpt2_dir, hub_stand_in, tmp_path):
    gpt2 = load_model(str(tiny_gpt2_dir), device="cpu")
    loaded = hub_stand_in(tiny_gpt2_dir)
    _hub_prompt(setup, gpt2, tmp_path / "prompt")
    result = CliRunner().invoke(main, ["trained", "export-peft", str(tmp_path / "prompt"), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert loaded == [HUB_ID] and (tmp_path / "out" / "adapter_config.json").is_file()


def test_a_model_whose_tokenizer_cannot_be_loaded_is_not_exported_unchecked(setup, tiny_gpt2_dir, tmp_path):
    gpt2 = load_model(str(tiny_gpt2_dir), device="cpu")
    save_trained(tmp_path / "prompt", Trained("softprompt", tensors={"prompt_embeddings": torch.zeros(2, 32)}),
                 {**trained_identity(setup, gpt2), "model": "example-org/not-cached", "model_source": "gone/away"})
    with pytest.raises(UserError, match="cannot load the tokenizer of model 'example-org/not-cached'"):
        export_soft_prompt(tmp_path / "prompt", tmp_path / "out")
    assert not (tmp_path / "out").exists()
