"""The word-score cache a suite shares between zero-shot runs over the same prompts."""
from __future__ import annotations

import torch
from test_scoring import TEXTS, WORDS, backend_of, template_for

from promptlab.backends.cached import CachedScores
from promptlab.backends.models import load_model


class Counting:
    """Forwards to a backend and records the prompts of each call."""

    def __init__(self, backend):
        self.backend, self.calls = backend, []
        self.kind, self.model, self.tokenizer, self.device = backend.kind, backend.model, backend.tokenizer, backend.device

    def word_logprobs(self, prompts, words, soft_prompt=None):
        self.calls.append(list(prompts))
        return self.backend.word_logprobs(prompts, words, soft_prompt)


def test_inference_scores_are_computed_once_and_training_always_runs(tiny_gpt2_dir):
    loaded = load_model(str(tiny_gpt2_dir), device="cpu", dtype="float32")
    template = template_for(loaded.kind)
    prompts = [template.render({"text": text}) for text in TEXTS]
    counting = Counting(backend_of(loaded))
    cached = CachedScores(counting)
    with torch.inference_mode():
        expected = backend_of(loaded).word_logprobs(prompts, WORDS)
        first = cached.word_logprobs(prompts[:2], WORDS)
        every = cached.word_logprobs(prompts + prompts[:1], WORDS)
        fewer_words = cached.word_logprobs(prompts, WORDS[:2])
    assert counting.calls == [prompts[:2], prompts[2:]]  # each prompt scored once, the rest read back
    torch.testing.assert_close(every[:len(prompts)], expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(every[:2], first) and torch.equal(every[-1], first[0]) and torch.equal(fewer_words, every[:-1, :2])
    soft = loaded.model.get_input_embeddings().weight[:2].detach().clone().requires_grad_(True)
    cached.word_logprobs(prompts[:1], WORDS, soft).sum().backward()  # training: to the model, with gradients
    cached.word_logprobs(prompts[:1], WORDS).sum()
    assert len(counting.calls) == 4 and soft.grad is not None
