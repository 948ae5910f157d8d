"""Label probabilities of a causal LM computed the plain way, as a reference for what promptlab answers.

One forward per (prompt, word) with transformers alone: the prompt text is written by the caller (not
rendered by promptlab), the word's tokens are where the tokenized `context + word` goes past the tokenized
context (as lm-evaluation-harness splits them), their log-probabilities are summed, a label's words are
combined by log-sum-exp and the labels normalised by softmax. Contextual calibration ("Calibrate Before
Use") divides out the mean label distribution of content-free prompts and renormalises. Nothing here
imports promptlab.
"""
from __future__ import annotations

import torch


def word_logprob(model, tokenizer, context: str, word: str) -> float:
    """log p(word | context), summed over the word's tokens; `word` carries its leading space."""
    alone = tokenizer(context)["input_ids"]
    together = tokenizer(context + word)["input_ids"]
    assert together[:len(alone)] == alone and len(together) > len(alone), (context, word)
    with torch.no_grad():
        logprobs = model(torch.tensor([together])).logits[0].float().log_softmax(-1)
    return sum(logprobs[position - 1, together[position]].item() for position in range(len(alone), len(together)))


def label_probabilities(model, tokenizer, context: str, words: dict[str, list[str]]) -> dict[str, float]:
    """p(label | context) over the labels: each label's words (with their leading space) by log-sum-exp."""
    scores = torch.tensor([torch.tensor([word_logprob(model, tokenizer, context, word) for word in label_words],
                                        dtype=torch.float64).logsumexp(0).item() for label_words in words.values()],
                          dtype=torch.float64)
    return dict(zip(words, scores.softmax(0).tolist()))


def contextual(probabilities: dict[str, float], content_free: list[dict[str, float]]) -> dict[str, float]:
    """p(label | x) / mean content-free p(label), renormalised over the labels."""
    prior = {label: sum(row[label] for row in content_free) / len(content_free) for label in probabilities}
    divided = {label: probability / prior[label] for label, probability in probabilities.items()}
    return {label: value / sum(divided.values()) for label, value in divided.items()}


def top(probabilities: dict[str, float]) -> str:
    return max(probabilities, key=probabilities.get)


TOY_WORDS = {"negative": [" bad", " awful"], "positive": [" good", " great"]}  # fewshot_toys' verbalizer


def toy_answers(model_dir, texts: list[str]) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """The toy task's answers with template t1 ("{{ text }} it was {{ mask }}"), contextual calibration (the
    content-free texts "N/A", "" and "[MASK]": a causal model has no mask token) and without: float32."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    content_free = [label_probabilities(model, tokenizer, f"{filler} it was", TOY_WORDS)
                    for filler in ("N/A", "", "[MASK]")]
    plain = [label_probabilities(model, tokenizer, f"{text} it was", TOY_WORDS) for text in texts]
    return [contextual(row, content_free) for row in plain], plain
