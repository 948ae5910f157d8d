"""Precision: which dtype --dtype auto picks, and bfloat16 training over float32 parameters."""
from __future__ import annotations

import pytest
import torch
from catalog_files import write_catalog
from fewshot_toys import TOY_FILES

from promptlab.catalog.catalog import Catalog, Setup
from promptlab.methods import run_method
from promptlab.backends import models
from promptlab.backends.models import float32_copy, load_model, weights_fingerprint
from promptlab.methods.training import TrainConfig, autocast, train
from promptlab.kinds import task_examples


@pytest.mark.parametrize(("capabilities", "expected"), [
    ({"avx512_f": True, "avx512_bf16": True}, torch.bfloat16),
    ({"avx512_f": True, "amx_bf16": True, "amx_tile": True}, torch.bfloat16),
    ({"architecture": "arm64", "bf16": True}, torch.bfloat16),
    ({"avx512_f": True, "avx2": True}, torch.float32),  # AVX-512 without BF16: emulated, no faster
    ({"architecture": "arm64", "neon": True}, torch.float32),
])
def test_auto_is_bfloat16_only_where_the_cpu_has_bfloat16_instructions(monkeypatch, capabilities, expected):
    from promptlab.backends.models import resolve_dtype
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    assert resolve_dtype("auto", torch.device("cpu")) == resolve_dtype(None, torch.device("cpu")) == expected


def test_autocast_is_off_in_float32_and_on_in_bfloat16():
    with autocast("cpu", torch.float32):
        assert not torch.is_autocast_enabled("cpu")
    with autocast("cpu", torch.bfloat16):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_bfloat16_training_keeps_float32_parameters_and_gradients():
    torch.manual_seed(0)
    layer = torch.nn.Linear(8, 3)
    seen = []

    def label_logprobs(rows):
        output = layer(torch.stack(rows))
        seen.append(output.dtype)
        return output.float().log_softmax(-1)

    inputs = [torch.randn(8) for _ in range(12)]
    labels = [i % 3 for i in range(12)]
    config = TrainConfig(steps=20, lr=0.05, batch_size=4, eval_every=5, patience=0, precision=torch.bfloat16)
    result = train(layer, label_logprobs, inputs, labels, inputs, labels, config)
    assert set(seen) == {torch.bfloat16}  # every forward, dev checks included, ran in bfloat16
    assert layer.weight.dtype == torch.float32 and result.losses[-1] < result.losses[0]


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Setup:
    catalog = Catalog.from_options([write_catalog(tmp_path_factory.mktemp("toy-catalog"), TOY_FILES)])
    return Setup.load(catalog, "toy", "t1")


def test_finetune_on_a_bfloat16_model_trains_a_float32_copy_of_the_checkpoint(setup, tiny_gpt2_dir):
    loaded = load_model(str(tiny_gpt2_dir), device="cpu", dtype="bfloat16")
    exact = load_model(str(tiny_gpt2_dir), device="cpu", dtype="float32")
    copy = float32_copy(loaded)
    assert copy.dtype == torch.float32
    for (name, weight), (_, reference) in zip(copy.named_parameters(), exact.model.named_parameters()):
        assert torch.equal(weight, reference), name  # read again, not rounded up from bfloat16
    before = weights_fingerprint(loaded.model)
    result = run_method("finetune", setup=setup, loaded=loaded, train_pool=task_examples(setup.task, "train"),
                        test_examples=task_examples(setup.task, "test"), k=2, seed=1,
                        options={"steps": 2, "eval_every": 2})
    assert result["train_steps"] == 2 and loaded.model.dtype == torch.bfloat16
    assert weights_fingerprint(loaded.model) == before


@pytest.mark.parametrize("folder", ["tiny_llama_dir", "tiny_gpt2_dir", "tiny_bert_dir"])
def test_a_bfloat16_body_projects_onto_the_vocabulary_in_float32(folder, request, monkeypatch):
    model_dir = str(request.getfixturevalue(folder))
    reads = []
    real_load = models._load_weights
    monkeypatch.setattr(models, "_load_weights", lambda *args: reads.append(args[2]) or real_load(*args))
    half = load_model(model_dir, device="cpu", dtype="bfloat16")
    assert reads == [torch.bfloat16]  # the head's float32 weights come from the checkpoint file, not a second load
    exact = load_model(model_dir, device="cpu", dtype="float32")
    assert half.model.dtype == torch.bfloat16 and half.fingerprint == exact.fingerprint
    head, exact_head = half.model.get_output_embeddings(), exact.model.get_output_embeddings()
    assert head.weight.dtype == torch.float32 and not head.weight.requires_grad
    for name, parameter in exact_head.named_parameters():  # the checkpoint's own values, a bias too
        assert torch.equal(dict(head.named_parameters())[name], parameter)
    ids = torch.tensor([[1, 5, 9, 3]])
    with torch.inference_mode():
        logits = half.model(ids).logits
        reference = exact.model(ids).logits
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, reference, atol=0.1, rtol=0.05)


def test_gradients_through_a_bfloat16_cpu_forward_use_eager_attention_with_the_same_scores(tiny_llama_dir):
    from promptlab.backends import make_backend
    from promptlab.catalog.template import Prompt

    half = load_model(str(tiny_llama_dir), device="cpu", dtype="bfloat16")
    backend = make_backend(half.model, half.tokenizer, half.kind, half.device)
    seen = []
    original = half.model.forward

    def recording_forward(*args, **kwargs):
        seen.append(half.model.config._attn_implementation)
        return original(*args, **kwargs)

    half.model.forward = recording_forward
    prompts = [Prompt("a b c is", "."), Prompt("d e f g h is", ".")]
    with torch.inference_mode():
        served = backend.word_logprobs(prompts, ["x", "y z"])
    soft = torch.zeros(2, half.model.config.hidden_size, requires_grad=True)
    trained = backend.word_logprobs(prompts, ["x", "y z"], soft_prompt=soft)
    assert seen[0] == "sdpa" and set(seen[1:]) == {"eager"}, seen
    assert half.model.config._attn_implementation == "sdpa"  # restored after the block
    trained.sum().backward()
    assert soft.grad is not None and soft.grad.abs().sum() > 0
    with torch.inference_mode():
        reference = backend.word_logprobs(prompts, ["x", "y z"], soft_prompt=soft.detach())
    torch.testing.assert_close(trained.detach(), reference, atol=2e-2, rtol=1e-2)  # the kernels agree
    assert served.shape == trained.shape
