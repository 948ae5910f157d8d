"""The fast backends against slow, obviously correct reference loops, on tiny random models."""
from pathlib import Path

import pytest
import torch
from conftest import MAX_POSITIONS

from promptlab.backends import make_backend
from promptlab.backends.models import load_model
from promptlab.backends.scoring import LabelScorer
from promptlab.catalog.template import parse_template
from promptlab.catalog.verbalizer import Verbalizer

WORDS = ["great", "terrible", "masterpiece", "not very good", "unwatchable"]  # 1, 1, n, 3+, n tokens
TEXTS = ["the movie was fun", "i hate this film , it was boring and the acting was awful",
         "a", "this story is really not that good . the plot : fine"]
TEMPLATES = {"mlm": "{{ text }} It was {{ mask }} .", "causal": "{{ text }} It was {{ mask }}"}


def template_for(kind: str, source: str | None = None):
    return parse_template(source or TEMPLATES[kind], name="t", task="toy", path=Path("t.jinja"))


@pytest.fixture
def dtype() -> str:
    return "float32"  # the references below are exact in float32; tests parametrize it to check other dtypes


@pytest.fixture(params=["tiny_bert_dir", "tiny_roberta_dir", "tiny_gpt2_dir", "tiny_llama_dir"])
def loaded(request, dtype):
    return load_model(str(request.getfixturevalue(request.param)), device="cpu", dtype=dtype)


def backend_of(loaded):
    return make_backend(loaded.model, loaded.tokenizer, loaded.kind, loaded.device)


def split_context(tokenizer, prompt, word) -> tuple[list[int], list[int]]:
    """(context ids with the tokenizer's own special tokens, the word's ids after them), lm-eval style:
    the whitespace before the slot goes with the word, and context + word are encoded together."""
    context = prompt.before.rstrip()
    whole = tokenizer(prompt.before + word)["input_ids"]
    alone = tokenizer(context)["input_ids"]
    if tokenizer.sep_token_id is not None and alone[-1:] == [tokenizer.sep_token_id]:  # [CLS] ... [SEP]
        whole, alone = whole[:-1], alone[:-1]
    assert whole[:len(alone)] == alone
    return alone, whole[len(alone):]


def reference_causal(loaded, prompt, word) -> float:
    """One unpadded forward over the tokenizer's own encoding of context + word; sum the word's log-probs."""
    context, answer = split_context(loaded.tokenizer, prompt, word)
    logprobs = loaded.model(torch.tensor([context + answer])).logits[0].log_softmax(-1)
    return sum(logprobs[len(context) - 1 + i, token].item() for i, token in enumerate(answer))


def reference_mlm(loaded, prompt, word) -> float:
    """PET decoding with the full model: fill the most probable remaining target token first."""
    tokenizer = loaded.tokenizer
    context, answer = split_context(tokenizer, prompt, word)
    after = tokenizer(prompt.after, add_special_tokens=False)["input_ids"]
    ids = context + [tokenizer.mask_token_id] * len(answer) + after + [tokenizer("")["input_ids"][-1]]
    start = len(context)
    remaining, total = set(range(len(answer))), 0.0
    while remaining:
        logprobs = loaded.model(torch.tensor([ids])).logits[0].log_softmax(-1)
        best = max(remaining, key=lambda k: logprobs[start + k, answer[k]].item())
        total += logprobs[start + best, answer[best]].item()
        ids[start + best] = answer[best]
        remaining.remove(best)
    return total


@torch.inference_mode()
@pytest.mark.parametrize("slot", [" {{ mask }}", "{{ mask }}"], ids=["space before the slot", "no space"])
def test_fast_scores_match_reference_loop(loaded, slot):
    source = "{{ text }} It was:" + slot + (" ." if loaded.kind == "mlm" else "")
    template = template_for(loaded.kind, source)
    prompts = [template.render({"text": text}) for text in TEXTS]
    backend = backend_of(loaded)
    assert any(len(backend.word_tokens(prompts[0], word)) > 1 for word in WORDS)  # multi-token words covered
    fast = backend.word_logprobs(prompts, WORDS)
    reference = reference_mlm if loaded.kind == "mlm" else reference_causal
    slow = torch.tensor([[reference(loaded, prompt, word) for word in WORDS] for prompt in prompts])
    torch.testing.assert_close(fast, slow, atol=1e-4, rtol=1e-4)


def test_the_llama_fixture_adds_its_bos_through_the_post_processor(tiny_llama_dir):
    """So the reference loop above sees a BOS that no `add_bos_token` flag announces."""
    tokenizer = load_model(str(tiny_llama_dir), device="cpu").tokenizer
    assert tokenizer("great")["input_ids"][0] == tokenizer.bos_token_id
    assert not getattr(tokenizer, "add_bos_token", False)


SHARED_PREFIXES = ["not very good", "not very bad", "not good", "very good", "not very good at all",
                   "masterpiece", "unwatchable film"]  # many intents start with the same words


@pytest.mark.parametrize("fixture", ["tiny_gpt2_dir", "tiny_llama_dir"])
@torch.inference_mode()
def test_label_words_sharing_prefixes_read_them_once_and_score_as_the_reference(fixture, request):
    from promptlab.backends.causal import _continuation
    loaded = load_model(str(request.getfixturevalue(fixture)), device="cpu")
    template = template_for("causal")
    prompts = [template.render({"text": text}) for text in TEXTS]
    backend = backend_of(loaded)
    tokens = [backend.word_tokens(prompts[0], word) for word in SHARED_PREFIXES]
    assert len(_continuation(tokens).inputs) < sum(len(word) - 1 for word in tokens)  # prefixes are shared
    fast = backend.word_logprobs(prompts, SHARED_PREFIXES)
    slow = torch.tensor([[reference_causal(loaded, prompt, word) for word in SHARED_PREFIXES] for prompt in prompts])
    torch.testing.assert_close(fast, slow, atol=1e-4, rtol=1e-4)


@torch.inference_mode()
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_scores_do_not_change_with_batch_size(loaded, dtype):
    template = template_for(loaded.kind)
    verbalizer = Verbalizer("v", "toy", Path("v.yaml"), {"negative": ("terrible", "unwatchable"),
                                                         "positive": ("great", "not very good")})
    prompts = [template.render({"text": text}) for text in TEXTS * 3]
    scores = [LabelScorer(backend_of(loaded), template, verbalizer, batch_size=size).label_logprobs(prompts)
              for size in (1, 5, 64)]
    # Other paddings change how kernels split their sums, so scores may move in their last bits: within
    # 1e-5 in float32, and in bfloat16 within 1e-3, a tenth of its resolution at 1.0 (2 ** -7).
    tolerance = 1e-5 if dtype == "float32" else 1e-3
    torch.testing.assert_close(scores[0], scores[1], atol=tolerance, rtol=tolerance)
    torch.testing.assert_close(scores[0], scores[2], atol=tolerance, rtol=tolerance)


@torch.inference_mode()
def test_text_too_long_is_cut_from_the_start_and_keeps_the_slot(loaded):
    """303 tokens on 128 positions: the scores are those of the prompt's last tokens, read in place."""
    template = template_for(loaded.kind)
    backend = backend_of(loaded)
    long_prompt = template.render({"text": "the movie was fun and " * 60})
    tokenizer = loaded.tokenizer
    assert len(tokenizer(long_prompt.before)["input_ids"]) > 300
    words = ["great", "unwatchable"]
    fast = backend.word_logprobs([long_prompt], words)
    for index, word in enumerate(words):
        context, answer = split_context(tokenizer, long_prompt, word)
        special = tokenizer("")["input_ids"]
        if loaded.kind == "causal":  # the start tokens, then the last tokens that leave room for the word
            start = special[:1] if special and context[:1] == special[:1] else []
            longest = max(len(split_context(tokenizer, long_prompt, w)[1]) for w in words)
            kept = start + context[len(context) - (backend.max_length - longest - len(start)):]
            logprobs = loaded.model(torch.tensor([kept + answer])).logits[0].log_softmax(-1)
            expected = sum(logprobs[len(kept) - 1 + i, t].item() for i, t in enumerate(answer))
            assert len(kept + answer) <= MAX_POSITIONS
        else:  # [CLS], the context's last tokens, the masks, the text after the slot, [SEP]
            after = tokenizer(long_prompt.after, add_special_tokens=False)["input_ids"]
            room = backend.max_length - 2 - len(answer) - len(after)
            ids = special[:1] + context[len(context) - room:] + [tokenizer.mask_token_id] * len(answer) + after \
                + special[-1:]
            assert len(ids) <= MAX_POSITIONS
            expected = _pet_score(loaded.model, ids, 1 + room, answer)
        assert fast[0, index].item() == pytest.approx(expected, abs=1e-4)


def _pet_score(model, ids, start, answer) -> float:
    remaining, total = set(range(len(answer))), 0.0
    while remaining:
        logprobs = model(torch.tensor([ids])).logits[0].log_softmax(-1)
        best = max(remaining, key=lambda k: logprobs[start + k, answer[k]].item())
        total += logprobs[start + best, answer[best]].item()
        ids[start + best] = answer[best]
        remaining.remove(best)
    return total


@torch.inference_mode()
def test_a_budget_of_only_the_start_tokens_still_fits_the_model(tiny_gpt2_dir):
    """With no room left for context the prompt shrinks to one token, never to everything."""
    loaded = load_model(str(tiny_gpt2_dir), device="cpu", dtype="float32")
    word = "unwatchable"
    template = template_for("causal")
    long_prompt = template.render({"text": "the movie was fun and " * 60})
    n_word = len(loaded.tokenizer(" " + word, add_special_tokens=False)["input_ids"])
    backend = make_backend(loaded.model, loaded.tokenizer, "causal", loaded.device, max_length=n_word)
    scores = backend.word_logprobs([long_prompt], [word])  # 303 tokens kept would overflow 128 positions
    eos = loaded.tokenizer.eos_token_id
    answer = loaded.tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    logprobs = loaded.model(torch.tensor([[eos] + answer])).logits[0].log_softmax(-1)
    expected = sum(logprobs[i, t].item() for i, t in enumerate(answer))
    assert scores[0, 0].item() == pytest.approx(expected, abs=1e-4)


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
