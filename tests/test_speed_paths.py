"""The speed paths give the reference scores: packed causal words, word groups, soft prompts,
half precision, eager attention, batch-size back-off, tokenization once, and the CLI options."""
import json
from pathlib import Path

import pytest
import torch
from catalog_files import SENTIMENT_FILES, write_catalog
from click.testing import CliRunner
from test_scoring import TEXTS, WORDS, backend_of, reference_causal, template_for

import promptlab.backends.causal as causal
from promptlab.backends.batching import BackOff, initial_batch_size
from promptlab.cli import main
from promptlab.backends.models import load_model, resolve_dtype
from promptlab.backends.scoring import LabelScorer
from promptlab.catalog.verbalizer import Verbalizer


@pytest.fixture(params=["tiny_gpt2_dir", "tiny_llama_dir"])
def causal_model(request):
    return load_model(str(request.getfixturevalue(request.param)), device="cpu", dtype="float32")


def reference_scores(loaded, prompts, words) -> torch.Tensor:
    return torch.tensor([[reference_causal(loaded, prompt, word) for word in words] for prompt in prompts])


@torch.inference_mode()
def test_rows_whose_words_tokenize_differently_are_packed_apart(causal_model):
    # The whitespace before the slot comes from the text here, so rows carry different word tokens.
    template = template_for("causal", "{{ text }}{{ mask }}")
    prompts = [template.render({"text": text}) for text in ("the movie was ", "it was", "a film . i  ")]
    fast = backend_of(causal_model).word_logprobs(prompts, WORDS)
    torch.testing.assert_close(fast, reference_scores(causal_model, prompts, WORDS), atol=1e-4, rtol=1e-4)


@torch.inference_mode()
def test_long_label_sets_split_into_word_groups(causal_model, monkeypatch):
    monkeypatch.setattr(causal, "_PACKED_TOKENS", 2)  # every multi-token word in a forward of its own
    assert len(causal._word_groups([1, 3, 1, 2, 4])) == 3
    prompts = [template_for("causal").render({"text": text}) for text in TEXTS]
    fast = backend_of(causal_model).word_logprobs(prompts, WORDS)
    torch.testing.assert_close(fast, reference_scores(causal_model, prompts, WORDS), atol=1e-4, rtol=1e-4)


@torch.inference_mode()
def test_eager_attention_takes_the_additive_mask(tiny_llama_dir):
    loaded = load_model(str(tiny_llama_dir), device="cpu", dtype="float32")
    prompts = [template_for("causal").render({"text": text}) for text in TEXTS]
    expected = reference_scores(loaded, prompts, WORDS)
    loaded.model.set_attn_implementation("eager")
    assert loaded.model.config._attn_implementation == "eager"
    torch.testing.assert_close(backend_of(loaded).word_logprobs(prompts, WORDS), expected, atol=1e-4, rtol=1e-4)


def test_a_soft_prompt_reads_like_the_tokens_it_copies(causal_model):
    """Soft vectors equal to token embeddings score as those tokens placed after the start tokens."""
    backend = backend_of(causal_model)
    inserted = backend._tokens(" this movie")
    table = causal_model.model.get_input_embeddings().weight
    soft_prompt = torch.nn.Parameter(table[list(inserted)].detach().clone())
    prompts = [template_for("causal").render({"text": text}) for text in TEXTS]
    scores = backend.word_logprobs(prompts, WORDS, soft_prompt)
    with torch.inference_mode():
        expected = torch.tensor([[_reference_with_tokens(causal_model, backend, prompt, word, list(inserted))
                                  for word in WORDS] for prompt in prompts])
    torch.testing.assert_close(scores.detach(), expected, atol=1e-4, rtol=1e-4)
    scores.sum().backward()
    assert soft_prompt.grad is not None and torch.isfinite(soft_prompt.grad).all() and soft_prompt.grad.abs().sum() > 0


def _reference_with_tokens(loaded, backend, prompt, word, inserted) -> float:
    context = backend._context(prompt, budget=10_000)
    start = len(backend.start)
    context = context[:start] + inserted + context[start:]
    answer = backend.word_tokens(prompt, word)
    logprobs = loaded.model(torch.tensor([context + answer])).logits[0].log_softmax(-1)
    return sum(logprobs[len(context) - 1 + i, token].item() for i, token in enumerate(answer))


@torch.inference_mode()
def test_bfloat16_scores_stay_close_to_float32(tiny_llama_dir):
    loaded = load_model(str(tiny_llama_dir), device="cpu", dtype="float32")
    prompts = [template_for("causal").render({"text": text}) for text in TEXTS]
    full = backend_of(loaded).word_logprobs(prompts, WORDS)
    loaded.model.to(torch.bfloat16)
    for implementation in ("sdpa", "eager"):
        loaded.model.set_attn_implementation(implementation)
        half = backend_of(loaded).word_logprobs(prompts, WORDS)
        assert half.dtype == torch.float32
        torch.testing.assert_close(half, full, atol=0.15, rtol=0.05)


class OutOfMemoryAbove:
    """Wraps a backend: batches larger than `fits` raise the CUDA out-of-memory error."""

    def __init__(self, backend, fits: int):
        self.backend, self.fits, self.sizes = backend, fits, []
        self.kind, self.tokenizer, self.device = backend.kind, backend.tokenizer, backend.device

    def prompt_length(self, prompt):
        return self.backend.prompt_length(prompt)

    def word_logprobs(self, prompts, words, soft_prompt=None):
        self.sizes.append(len(prompts))
        if len(prompts) > self.fits:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.backend.word_logprobs(prompts, words, soft_prompt)


@torch.inference_mode()
def test_out_of_memory_halves_the_batch_and_keeps_the_scores(tiny_gpt2_dir):
    loaded = load_model(str(tiny_gpt2_dir), device="cpu")
    template = template_for("causal")
    verbalizer = Verbalizer("v", "toy", Path("v.yaml"), {"negative": ("terrible", "unwatchable"),
                                                         "positive": ("great", "not very good")})
    prompts = [template.render({"text": text}) for text in TEXTS * 5]
    expected = LabelScorer(backend_of(loaded), template, verbalizer, batch_size=4).label_logprobs(prompts)
    flaky = OutOfMemoryAbove(backend_of(loaded), fits=3)
    scorer = LabelScorer(flaky, template, verbalizer, batch_size=16)
    torch.testing.assert_close(scorer.label_logprobs(prompts), expected, atol=1e-5, rtol=1e-5)
    assert scorer.batch_size == 2 and flaky.sizes[:3] == [16, 8, 4]  # 16 -> 8 -> 4 -> 2, then kept
    assert max(flaky.sizes[3:]) == 2
    flaky.sizes.clear()
    scorer.label_logprobs(prompts)
    assert set(flaky.sizes) == {2}  # a later call starts at the size that fitted


def test_out_of_memory_with_one_row_is_raised():
    def never_fits(rows):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    with pytest.raises(torch.OutOfMemoryError):
        BackOff().run([0, 1, 2], never_fits)


def test_auto_batch_size_and_dtype_follow_the_device(monkeypatch):
    assert initial_batch_size("auto", torch.device("cpu")) == 32
    assert initial_batch_size("auto", torch.device("cuda")) == 256
    assert initial_batch_size(7, torch.device("cuda")) == 7
    assert initial_batch_size("auto-micro-batches", torch.device("cpu")) == 12
    assert initial_batch_size("auto-micro-batches", torch.device("cuda")) == 256
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_f": True, "avx512_bf16": True})
    assert resolve_dtype("auto", torch.device("cpu")) == torch.bfloat16
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_f": True})  # bfloat16 only emulated
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16  # asked for: allowed all the same
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float32


class CountingTokenizer:
    """Forwards to a tokenizer and counts the texts it encodes, with or without special tokens."""

    def __init__(self, tokenizer):
        self.tokenizer, self.texts = tokenizer, []

    def __call__(self, text, **kwargs):
        self.texts.append((text, kwargs.get("add_special_tokens", True)))
        return self.tokenizer(text, **kwargs)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)


@torch.inference_mode()
@pytest.mark.parametrize("model", ["tiny_llama_dir", "tiny_bert_dir"])
def test_each_text_is_tokenized_once(request, model):
    loaded = load_model(str(request.getfixturevalue(model)), device="cpu")
    counting = CountingTokenizer(loaded.tokenizer)
    loaded.tokenizer = counting
    template = template_for(loaded.kind)
    verbalizer = Verbalizer("v", "toy", Path("v.yaml"), {"negative": ("terrible", "unwatchable"),
                                                         "positive": ("great", "not very good")})
    prompts = [template.render({"text": text}) for text in TEXTS]
    scorer = LabelScorer(backend_of(loaded), template, verbalizer, batch_size=2)
    counting.texts.clear()  # building the backend probes the tokenizer once (its start tokens); scoring starts here
    scorer.label_logprobs(prompts)
    scorer.label_logprobs(prompts)  # a second pass (a later epoch, say) tokenizes nothing
    assert len(counting.texts) == len(set(counting.texts))


@pytest.mark.parametrize("native", [True, False])
def test_cli_batch_size_and_dtype_options(tmp_path, tiny_gpt2_dir, monkeypatch, native):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_f": True, "amx_bf16": native})
    root = write_catalog(tmp_path / "catalog", SENTIMENT_FILES)
    common = ["zeroshot", "--catalog", str(root), "--task", "toy", "--template", "t1", "--model", str(tiny_gpt2_dir),
              "--device", "cpu", "--json"]
    result = CliRunner().invoke(main, common + ["--batch-size", "auto"])  # --dtype auto by default
    assert result.exit_code == 0, result.output
    chosen = "bfloat16" if native else "float32"
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["batch_size"] == 32 and summary["dtype"] == chosen
    assert f"(causal, cpu, {chosen})" in result.output  # said in the output too
    result = CliRunner().invoke(main, common + ["--batch-size", "0"])
    assert result.exit_code == 2 and "neither a positive integer nor 'auto'" in result.output
    result = CliRunner().invoke(main, common + ["--dtype", "float16"])
    assert result.exit_code == 2 and "needs a GPU" in result.output
