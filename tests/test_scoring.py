"""The fast backends against slow, obviously correct reference loops, on tiny random models."""
from pathlib import Path

import pytest
import torch

from promptlab.backends import make_backend
from promptlab.models import load_model
from promptlab.scoring import LabelScorer
from promptlab.template import parse_template
from promptlab.verbalizer import Verbalizer

WORDS = ["great", "terrible", "masterpiece", "not very good", "unwatchable"]  # 1, 1, n, 3+, n tokens
TEXTS = ["the movie was fun", "i hate this film , it was boring and the acting was awful",
         "a", "this story is really not that good . the plot : fine"]
TEMPLATES = {"mlm": "{{ text }} It was {{ mask }} .", "causal": "{{ text }} It was {{ mask }}"}


def template_for(kind: str, source: str | None = None):
    return parse_template(source or TEMPLATES[kind], name="t", task="toy", path=Path("t.jinja"))


@pytest.fixture(params=["tiny_bert_dir", "tiny_roberta_dir", "tiny_gpt2_dir", "tiny_llama_dir"])
def loaded(request):
    return load_model(str(request.getfixturevalue(request.param)), device="cpu")


def backend_of(loaded):
    return make_backend(loaded.model, loaded.tokenizer, loaded.kind, loaded.device)


def reference_causal(loaded, prompt, word) -> float:
    """One unpadded forward over context + word; sum the word tokens' log-probs."""
    backend = backend_of(loaded)
    context = backend._context(prompt, budget=10_000)
    answer = backend.word_tokens(prompt, word)
    logprobs = loaded.model(torch.tensor([context + answer])).logits[0].log_softmax(-1)
    return sum(logprobs[len(context) - 1 + i, token].item() for i, token in enumerate(answer))


def reference_mlm(loaded, prompt, word) -> float:
    """PET decoding with the full model: fill the most probable remaining target token first."""
    backend = backend_of(loaded)
    answer = backend.word_tokens(prompt, word)
    ids, _, start = backend._row(prompt, [loaded.tokenizer.mask_token_id] * len(answer), 0)
    remaining, total = set(range(len(answer))), 0.0
    while remaining:
        logprobs = loaded.model(torch.tensor([ids])).logits[0].log_softmax(-1)
        best = max(remaining, key=lambda k: logprobs[start + k, answer[k]].item())
        total += logprobs[start + best, answer[best]].item()
        ids[start + best] = answer[best]
        remaining.remove(best)
    return total


@torch.inference_mode()
def test_fast_scores_match_reference_loop(loaded):
    template = template_for(loaded.kind)
    prompts = [template.render({"text": text}) for text in TEXTS]
    backend = backend_of(loaded)
    assert any(len(backend.word_tokens(prompts[0], word)) > 1 for word in WORDS)  # multi-token words covered
    fast = backend.word_logprobs(prompts, WORDS)
    reference = reference_mlm if loaded.kind == "mlm" else reference_causal
    slow = torch.tensor([[reference(loaded, prompt, word) for word in WORDS] for prompt in prompts])
    torch.testing.assert_close(fast, slow, atol=1e-4, rtol=1e-4)


@torch.inference_mode()
def test_scores_do_not_change_with_batch_size(loaded):
    template = template_for(loaded.kind)
    verbalizer = Verbalizer("v", "toy", Path("v.yaml"), {"negative": ("terrible", "unwatchable"),
                                                         "positive": ("great", "not very good")})
    prompts = [template.render({"text": text}) for text in TEXTS * 3]
    scores = [LabelScorer(backend_of(loaded), template, verbalizer, batch_size=size).label_logprobs(prompts)
              for size in (1, 5, 64)]
    torch.testing.assert_close(scores[0], scores[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(scores[0], scores[2], atol=1e-5, rtol=1e-5)


@torch.inference_mode()
def test_text_too_long_is_cut_and_keeps_the_slot(loaded):
    template = template_for(loaded.kind)
    long_prompt = template.render({"text": "the movie was fun and " * 200})
    scores = backend_of(loaded).word_logprobs([long_prompt], WORDS)
    assert torch.isfinite(scores).all()


def fake_scorer(aggregate: str, calibrate: str = "none"):
    verbalizer = Verbalizer("v", "toy", Path("v.yaml"), {"a": ("x", "y"), "b": ("z",)})
    scorer = LabelScorer(backend=None, template=None, verbalizer=verbalizer, aggregate=aggregate, calibrate=calibrate)
    return scorer


@pytest.mark.parametrize("aggregate, expected", [
    ("logsumexp", [torch.logsumexp(torch.tensor([-1.0, -2.0]), 0).item(), -3.0]),
    ("mean", [-1.5, -3.0]),
    ("max", [-1.0, -3.0]),
])
def test_aggregation_over_a_labels_words(aggregate, expected):
    scores = fake_scorer(aggregate).aggregate_words(torch.tensor([[-1.0, -2.0, -3.0]]))
    torch.testing.assert_close(scores, torch.tensor([expected]))


class FixedBackend:
    """A backend whose word scores depend only on the prompt text: enough to check calibration maths."""

    kind = "causal"
    tokenizer = None

    def __init__(self, table):
        self.table = table

    def prompt_length(self, prompt):
        return len(prompt.before)

    def word_logprobs(self, prompts, words, soft_prompt=None):
        return torch.tensor([self.table.get(p.before, [-1.0, -1.0, -1.0]) for p in prompts])


def test_contextual_calibration_divides_out_the_content_free_distribution():
    template = template_for("causal", "{{ text }} is {{ mask }}")
    table = {"N/A is ": [-0.5, -3.0, -1.0], " is ": [-0.2, -2.0, -2.0], "[MASK] is ": [-0.4, -3.0, -1.5],
             "good is ": [-1.0, -2.0, -0.7]}
    verbalizer = Verbalizer("v", "toy", Path("v.yaml"), {"a": ("x", "y"), "b": ("z",)})
    scorer = LabelScorer(FixedBackend(table), template, verbalizer, calibrate="contextual")
    plain = LabelScorer(FixedBackend(table), template, verbalizer)
    content_free = plain.label_logprobs([template.content_free(f) for f in ("N/A", "", "[MASK]")]).exp().mean(0)
    expected = (plain.label_logprobs([template.render({"text": "good"})]) - content_free.log()).log_softmax(-1)
    torch.testing.assert_close(scorer.label_logprobs([template.render({"text": "good"})]), expected)
    # calibrating the content-free inputs themselves moves them towards uniform
    calibrated = scorer.label_logprobs([template.content_free(f) for f in ("N/A", "", "[MASK]")]).exp().mean(0)
    assert (calibrated - 0.5).abs().max() < (content_free - 0.5).abs().max()


def test_pmi_subtracts_the_domain_prompt_per_word():
    template = template_for("causal", '{#\ndomain: "Topic:"\n#}{{ text }} Topic: {{ mask }}')
    table = {"Topic: ": [-1.0, -4.0, -2.0], "good Topic: ": [-2.0, -3.0, -2.5]}
    verbalizer = Verbalizer("v", "toy", Path("v.yaml"), {"a": ("x", "y"), "b": ("z",)})
    scorer = LabelScorer(FixedBackend(table), template, verbalizer, calibrate="pmi")
    words = torch.tensor([[-2.0 + 1.0, -3.0 + 4.0, -2.5 + 2.0]])
    expected = torch.stack([torch.logsumexp(words[0, :2], 0), words[0, 2]]).unsqueeze(0).log_softmax(-1)
    torch.testing.assert_close(scorer.label_logprobs([template.render({"text": "good"})]), expected)


@pytest.mark.parametrize("model", ["tiny_gpt2_dir", "tiny_llama_dir", "tiny_roberta_dir"])
def test_pmi_scores_the_same_word_tokens_after_the_domain_prompt(request, model):
    """The baseline must read ' great' as the full prompt does, not 'great' glued to the domain text."""
    loaded = load_model(str(request.getfixturevalue(model)), device="cpu")
    backend = backend_of(loaded)
    template = template_for(loaded.kind, '{#\ndomain: "It was"\n#}{{ text }} It was {{ mask }}')
    full, domain = template.render({"text": "fun"}), template.domain_prompt()
    for word in ("great", "terrible"):
        expected = loaded.tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        assert backend.word_tokens(domain, word) == backend.word_tokens(full, word) == expected


class RecordingBackend(FixedBackend):
    """Remembers every prompt it scores; its tokenizer has a mask token, as a masked LM's does."""

    kind = "mlm"

    def __init__(self, table, mask_token):
        super().__init__(table)
        self.tokenizer = type("Tokenizer", (), {"mask_token": mask_token})()
        self.seen = []

    def word_logprobs(self, prompts, words, soft_prompt=None):
        self.seen.extend(prompts)
        return super().word_logprobs(prompts, words, soft_prompt)


@pytest.mark.parametrize("mask_token", ["[MASK]", "<mask>"])
def test_contextual_calibration_uses_three_different_content_free_inputs(mask_token):
    template = template_for("mlm", "{{ text }} is {{ mask }} .")
    verbalizer = Verbalizer("v", "toy", Path("v.yaml"), {"a": ("x", "y"), "b": ("z",)})
    backend = RecordingBackend({}, mask_token)
    LabelScorer(backend, template, verbalizer, calibrate="contextual").baseline()
    assert sorted(prompt.before for prompt in backend.seen) == sorted(["N/A is ", " is ", f"{mask_token} is "])
