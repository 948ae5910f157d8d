"""Soft prompts: initialisation, and training touches nothing but the prompt (saving: test_artefacts.py)."""
from __future__ import annotations


import pytest
import torch
from catalog_files import write_catalog
from fewshot_toys import TOY_FILES, sensitive_model

from promptlab.backends import make_backend
from promptlab.catalog.catalog import Catalog, Setup
from promptlab.errors import UserError
from promptlab.backends.models import load_model
from promptlab.methods.pipeline import render_all
from promptlab.data.sampling import sample_kshot
from promptlab.backends.scoring import LabelScorer
from promptlab.methods.softprompt import SoftPrompt, initial_embeddings
from promptlab.methods.training import TrainConfig, frozen, train
from promptlab.kinds import task_examples


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Catalog:
    return Catalog.from_options([write_catalog(tmp_path_factory.mktemp("toy-catalog"), TOY_FILES)])


@pytest.fixture(scope="module")
def setup(catalog) -> Setup:
    return Setup.load(catalog, "toy", "t1")


@pytest.fixture(scope="module")
def gpt2(tiny_gpt2_dir):
    return load_model(str(tiny_gpt2_dir), device="cpu")


@pytest.fixture(scope="module")
def sensitive_gpt2(tiny_gpt2_dir, tmp_path_factory):
    return load_model(str(sensitive_model(tiny_gpt2_dir, tmp_path_factory.mktemp("sensitive-gpt2"))), device="cpu")


def toy_training(setup: Setup, loaded, *, seed: int = 13, k: int = 8):
    """(scorer, soft prompt, label_logprobs, train prompts/gold, dev prompts/gold) for the toy task."""
    split = sample_kshot(task_examples(setup.task, "train"), setup.task.labels, k, seed)
    soft = SoftPrompt(initial_embeddings(loaded.model, loaded.tokenizer, length=4, init="vocab", seed=seed))
    scorer = LabelScorer(make_backend(loaded.model, loaded.tokenizer, loaded.kind, loaded.device), setup.template,
                         setup.verbalizer)

    def label_logprobs(prompts):
        scorer.soft_prompt = soft()
        return scorer.label_logprobs(prompts)

    def gold(examples):
        return [setup.task.labels.index(e["label"]) for e in examples]

    data = (render_all(setup.template, split.train), gold(split.train), render_all(setup.template, split.dev),
            gold(split.dev))
    return scorer, soft, label_logprobs, data


# ---------------------------------------------------------------- initialisation

def test_label_init_copies_the_label_words_embeddings_in_turn(gpt2):
    words = ["good", "bad"]
    initial = initial_embeddings(gpt2.model, gpt2.tokenizer, length=5, init="labels", seed=0, label_words=words)
    ids = [gpt2.tokenizer(" " + word, add_special_tokens=False)["input_ids"] for word in words]
    assert all(len(token_ids) == 1 for token_ids in ids)
    table = gpt2.model.get_input_embeddings().weight.detach()
    expected = table[[ids[0][0], ids[1][0], ids[0][0], ids[1][0], ids[0][0]]]
    assert torch.equal(initial, expected)


def test_text_init_repeats_the_text_tokens(gpt2):
    initial = initial_embeddings(gpt2.model, gpt2.tokenizer, length=3, init="text", seed=0, text="the movie")
    table = gpt2.model.get_input_embeddings().weight.detach()
    ids = gpt2.tokenizer("the movie", add_special_tokens=False)["input_ids"]
    assert torch.equal(initial, table[[ids[0], ids[1], ids[0]]])


def test_vocab_init_is_seeded_and_skips_special_tokens(gpt2):
    first = initial_embeddings(gpt2.model, gpt2.tokenizer, length=6, init="vocab", seed=3)
    assert torch.equal(first, initial_embeddings(gpt2.model, gpt2.tokenizer, length=6, init="vocab", seed=3))
    assert not torch.equal(first, initial_embeddings(gpt2.model, gpt2.tokenizer, length=6, init="vocab", seed=4))
    special = gpt2.model.get_input_embeddings().weight[gpt2.tokenizer.all_special_ids].detach()
    assert not any(torch.equal(row, special_row) for row in first for special_row in special)


@pytest.mark.parametrize("init, text, message", [("text", "  ", "needs a text"), ("words", "", "unknown prompt init")])
def test_bad_init_is_a_user_error(gpt2, init, text, message):
    with pytest.raises(UserError, match=message):
        initial_embeddings(gpt2.model, gpt2.tokenizer, length=2, init=init, seed=0, text=text)


def test_p_tuning_encoder_starts_at_the_initial_vectors_and_trains():
    initial = torch.randn(3, 8)
    soft = SoftPrompt(initial, reparameterize="mlp")
    assert torch.equal(soft(), initial)
    soft().pow(2).sum().backward()
    assert soft.encoder[2].weight.grad is not None and soft.embeddings.grad is not None


# ---------------------------------------------------------------- training

@pytest.mark.parametrize("model_dir", ["tiny_gpt2_dir", "tiny_bert_dir"])
def test_only_the_soft_prompt_gets_gradients_and_base_weights_stay_bitwise(request, setup, model_dir):
    loaded = load_model(str(request.getfixturevalue(model_dir)), device="cpu")
    before = {name: p.detach().clone() for name, p in loaded.model.named_parameters()}
    flags = {name: p.requires_grad for name, p in loaded.model.named_parameters()}
    _, soft, label_logprobs, data = toy_training(setup, loaded)
    initial = soft.embeddings.detach().clone()
    with frozen(loaded.model):
        result = train(soft, label_logprobs, *data, TrainConfig(steps=3, lr=0.1, batch_size=8, eval_every=10,
                                                                patience=0))
    assert result.steps == 3
    assert soft.embeddings.grad is not None and soft.embeddings.grad.abs().sum() > 0
    assert all(p.grad is None for p in loaded.model.parameters())
    assert all(torch.equal(p, before[name]) for name, p in loaded.model.named_parameters())
    assert {name: p.requires_grad for name, p in loaded.model.named_parameters()} == flags
    assert result.best_step == 0 or not torch.equal(soft.embeddings, initial)


def test_loss_falls_on_a_separable_toy_task(setup, sensitive_gpt2):
    _, soft, label_logprobs, data = toy_training(setup, sensitive_gpt2)
    with frozen(sensitive_gpt2.model):
        result = train(soft, label_logprobs, *data, TrainConfig(steps=20, lr=0.3, batch_size=16, eval_every=20,
                                                                patience=0, seed=13))
    assert result.losses[-1] < 0.5 * result.losses[0]
    assert result.best_step == 20 and result.best_dev_accuracy >= 0.9 > result.dev_history[0][1]


def test_same_seed_same_training(setup, sensitive_gpt2):
    runs = []
    for _ in range(2):
        _, soft, label_logprobs, data = toy_training(setup, sensitive_gpt2)
        with frozen(sensitive_gpt2.model):
            result = train(soft, label_logprobs, *data, TrainConfig(steps=4, lr=0.1, batch_size=4, eval_every=2,
                                                                    patience=0, seed=5))
        runs.append((result.losses, result.dev_history, soft().detach()))
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1] and torch.equal(runs[0][2], runs[1][2])


def test_early_stopping_keeps_the_best_dev_parameters(setup, sensitive_gpt2):
    _, soft, label_logprobs, data = toy_training(setup, sensitive_gpt2)
    with frozen(sensitive_gpt2.model):
        result = train(soft, label_logprobs, *data, TrainConfig(steps=40, lr=3.0, batch_size=4, eval_every=1,
                                                                patience=2, seed=13))
    best = max(result.dev_history, key=lambda entry: (entry[1], -entry[2]))
    assert result.best_step == best[0] and result.best_dev_accuracy == best[1]
    assert result.steps == result.dev_history[-1][0] <= result.best_step + 2  # stopped after 2 stale evaluations
    with torch.inference_mode():
        accuracy = (label_logprobs(data[2]).argmax(-1) == torch.tensor(data[3])).float().mean()
    assert float(accuracy) == best[1]  # the restored parameters are the best ones
