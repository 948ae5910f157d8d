"""token-finetune: the classic recipe for NER (Devlin et al., 2019) on the k-shot sample.

An encoder (or a causal LM) gets a token-classification head over the IOB2 tags of the task's
types. Each word is labelled on its first sub-token; the other sub-tokens and the special tokens
get -100, so the loss ignores them. AdamW on cross-entropy; the dev sample's entity F1 is measured
every `eval_every` steps and the best step's weights are kept (ties: the earlier step), stopping
after `patience` evaluations without improvement. Same seed, same numbers.

A sentence longer than `max_tokens` sub-tokens is tagged in overlapping windows (each half the
last one's): every word takes its tags from the window where it has the most context on both
sides, so no word goes untagged. Training truncates instead (a long training sentence loses its
tail, which only leaves those words out of the loss).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from promptlab.metrics.entities import entity_metrics
from promptlab.data.tags import OUTSIDE, spans_of, to_iob2
from promptlab.errors import UserError
from promptlab.methods.context import TrainingOptions
from promptlab.backends.models import dtype_name, model_source, resolve_device, weights_fingerprint

IGNORED = -100  # the label cross-entropy skips


@dataclass
class TokenFinetuneOptions(TrainingOptions):
    steps: int = 200
    lr: float = 1e-4
    batch_size: int = 8
    eval_every: int = 20
    patience: int = 4
    weight_decay: float = 0.01
    max_tokens: int = 256  # sub-tokens per window; longer sentences are tagged in overlapping windows


def tag_names(types: Sequence[str]) -> list[str]:
    return [OUTSIDE] + [f"{prefix}-{name}" for name in types for prefix in ("B", "I")]


class TokenTagger:
    """A token-classification model with its tokenizer: IOB2 tags (and a score) for pre-tokenised sentences."""

    def __init__(self, model, tokenizer, types: Sequence[str], device: torch.device, max_tokens: int = 256):
        self.model, self.tokenizer, self.types, self.device = model, tokenizer, list(types), device
        self.tags = tag_names(types)
        self.max_tokens = max_tokens

    @classmethod
    def load(cls, name: str, types: Sequence[str], *, device: str = "auto", seed: int = 0,
             max_tokens: int = 256) -> "TokenTagger":
        """A fresh head (seeded) on the named model: an alias, a folder, or a hub id."""
        from transformers import AutoModelForTokenClassification, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        from promptlab.backends.token_heads import register_token_heads
        register_token_heads()  # causal LMs transformers has no token-classification class for (gemma3-270m)

        transformers_logging.set_verbosity_error()  # "newly initialized head" is the point here, not news
        transformers_logging.disable_progress_bar()
        source = model_source(name)
        local_only = Path(source).is_dir()
        tags = tag_names(types)
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
        if getattr(tokenizer, "add_prefix_space", None) is False:  # byte-level BPE: words need their space
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only, add_prefix_space=True)
        if not tokenizer.is_fast:
            raise UserError(f"model '{name}' has no fast tokenizer, which token-finetune needs to map "
                            "sub-tokens to words", fix="pick a model with a tokenizer.json")
        if tokenizer.pad_token is None:  # causal LMs: any token will do, padding is masked out
            tokenizer.pad_token = tokenizer.eos_token
        torch.manual_seed(seed)
        try:
            model = AutoModelForTokenClassification.from_pretrained(
                source, num_labels=len(tags), id2label=dict(enumerate(tags)),
                label2id={tag: index for index, tag in enumerate(tags)}, local_files_only=local_only)
        except (OSError, ValueError) as error:
            raise UserError(f"cannot load '{name}' with a token-classification head: "
                            f"{str(error).strip().splitlines()[0]}", where=source,
                            fix="use an encoder (BERT, RoBERTa, ...) or a causal LM that transformers "
                                "supports for token classification") from None
        model.config.pad_token_id = tokenizer.pad_token_id
        chosen = resolve_device(device)
        return cls(model.to(chosen).eval(), tokenizer, types, chosen, max_tokens)

    def provenance(self) -> dict:
        """Which weights, where and in what precision (the fingerprint: `model_fingerprint`, of the backbone)."""
        return {"model_source": self.model.name_or_path, "model_kind": "token-classification",
                "device": str(self.device), "dtype": dtype_name(self.model.dtype)}

    def encode(self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]] | None = None):
        """Model inputs; the first sub-token of each word (its position, or -1 when truncated away);
        with `tags`, the labels (-100 off first sub-tokens)."""
        batch = self.tokenizer([list(tokens) for tokens in sentences], is_split_into_words=True, truncation=True,
                               max_length=self.max_tokens, padding=True, return_tensors="pt")
        firsts = torch.full((len(sentences), max(map(len, sentences))), -1, dtype=torch.long)
        for row in range(len(sentences)):
            previous = None
            for position, word in enumerate(batch.word_ids(row)):
                if word is not None and word != previous:
                    firsts[row, word] = position
                previous = word
        labels = None
        if tags is not None:
            labels = torch.full(batch["input_ids"].shape, IGNORED, dtype=torch.long)
            for row, row_tags in enumerate(tags):
                for word, tag in enumerate(row_tags):
                    if firsts[row, word] >= 0:
                        labels[row, firsts[row, word]] = self.tags.index(tag)
        inputs = {name: tensor.to(self.device) for name, tensor in batch.items() if name != "token_type_ids"
                  or "token_type_ids" in self.tokenizer.model_input_names}
        return inputs, firsts, labels

    def loss(self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]]) -> torch.Tensor:
        inputs, _, labels = self.encode(sentences, tags)
        logits = self.model(**inputs).logits.float()
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.to(self.device).flatten(),
                                                 ignore_index=IGNORED)

    def predict(self, sentences: Sequence[Sequence[str]], batch_size: int = 32) -> list[tuple[list[str], list[float]]]:
        """Per sentence: IOB2 tags (an I- that starts an entity read as B-) and each word's tag probability."""
        results = []
        with torch.inference_mode():
            for start in range(0, len(sentences), batch_size):
                chunk = sentences[start:start + batch_size]
                for tokens, probabilities in zip(chunk, self._word_probabilities(chunk, batch_size)):
                    best = probabilities.argmax(-1)
                    tags = [self.tags[int(index)] for index in best]
                    scores = probabilities.gather(-1, best[:, None])[:, 0].tolist()
                    results.append((to_iob2(tags, "IOB2", self.types)[0], scores))
        return results

    def _word_probabilities(self, sentences: Sequence[Sequence[str]], batch_size: int) -> list[torch.Tensor]:
        """Per sentence, [words, tags]: each word's tag probabilities at its first sub-token, taken from the
        window (of the overlapping windows a long sentence is cut into) where that sub-token is most central."""
        content = self.max_tokens - self.tokenizer.num_special_tokens_to_add()
        if content < 2:
            least = self.tokenizer.num_special_tokens_to_add() + 16
            raise UserError(f"max_tokens {self.max_tokens} leaves no room for text beside the model's special "
                            "tokens", fix=f"set --option max_tokens to {least} or more")
        windows = self.tokenizer([list(tokens) for tokens in sentences], is_split_into_words=True, truncation=True,
                                 max_length=self.max_tokens, stride=content // 2, return_overflowing_tokens=True)
        owners = windows["overflow_to_sample_mapping"]
        best = [torch.zeros(len(tokens), len(self.tags)) for tokens in sentences]
        margin = [[-1] * len(tokens) for tokens in sentences]  # the chosen window's context on the nearer side
        for first in range(0, len(owners), batch_size):
            rows = range(first, min(first + batch_size, len(owners)))
            batch = self.tokenizer.pad({"input_ids": [windows["input_ids"][row] for row in rows],
                                        "attention_mask": [windows["attention_mask"][row] for row in rows]},
                                       return_tensors="pt")
            inputs = {name: tensor.to(self.device) for name, tensor in batch.items()}
            probabilities = self.model(**inputs).logits.float().softmax(-1).cpu()
            for offset, row in enumerate(rows):
                sentence, word_ids = owners[row], windows.word_ids(row)
                shift = probabilities.shape[1] - len(word_ids) if self.tokenizer.padding_side == "left" else 0
                placed = [position for position, word in enumerate(word_ids) if word is not None]
                if not placed:
                    continue
                # a later window may open inside a word; that word's first sub-token is in the window before
                previous = word_ids[placed[0]] if row and owners[row - 1] == sentence else None
                for position, word in enumerate(word_ids):
                    if word is not None and word != previous:
                        context = min(position - placed[0], placed[-1] - position)
                        if context > margin[sentence][word]:
                            margin[sentence][word] = context
                            best[sentence][word] = probabilities[offset, position + shift]
                    previous = word
        return best


def model_fingerprint(name: str, device: str = "auto") -> str:
    """The fingerprint of the backbone weights `name` loads now for token classification (the head, new for
    every run, left out)."""
    return weights_fingerprint(TokenTagger.load(name, [], device=device).model.base_model)


@dataclass
class TaggerTraining:
    steps: int
    best_step: int
    best_dev_f1: float | None
    losses: list[float]
    dev_history: list[tuple[int, float]]
    seconds_per_step: float


def train_tagger(tagger: TokenTagger, train: Sequence[dict], dev: Sequence[dict], options: TokenFinetuneOptions,
                 seed: int) -> TaggerTraining:
    """Fine-tune every weight; keep the step with the best dev F1 (step 0, the untrained head, included)."""
    torch.manual_seed(seed)
    model = tagger.model.train(False)  # eval mode: no dropout, so the same seed gives the same numbers
    model.requires_grad_(True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    history, losses, best, stale, seconds = [], [], None, 0, 0.0

    def evaluate(step: int) -> bool:
        nonlocal best
        if not dev:
            return True
        predicted = [tags for tags, _ in tagger.predict([example["tokens"] for example in dev])]
        f1 = entity_metrics([example["tags"] for example in dev], predicted, tagger.types)["f1"]
        history.append((step, round(f1, 4)))
        if best is not None and f1 <= best[1]:
            return False
        best = (step, f1, {name: tensor.detach().clone() for name, tensor in model.state_dict().items()})
        return True

    evaluate(0)
    step = 0
    for step in range(1, options.steps + 1):
        started = time.perf_counter()
        if not order:
            order = torch.randperm(len(train), generator=generator).tolist()
        rows, order = order[:options.batch_size], order[options.batch_size:]
        optimizer.zero_grad(set_to_none=True)
        loss = tagger.loss([train[i]["tokens"] for i in rows], [train[i]["tags"] for i in rows])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        seconds += time.perf_counter() - started
        losses.append(round(loss.item(), 4))
        if step % options.eval_every == 0 or step == options.steps:
            stale = 0 if evaluate(step) else stale + 1
            if options.patience and stale >= options.patience:
                break
    model.requires_grad_(False)
    if best is not None:
        model.load_state_dict(best[2])
    return TaggerTraining(steps=step, best_step=best[0] if best else step, best_dev_f1=best[1] if best else None,
                          losses=losses, dev_history=history, seconds_per_step=round(seconds / max(step, 1), 4))


def spans_with_scores(tags: Sequence[str], scores: Sequence[float]) -> list[tuple]:
    """(span, score) for each entity: the mean probability of its words' tags."""
    return [(span, sum(scores[span.start:span.end]) / (span.end - span.start)) for span in spans_of(tags)]
