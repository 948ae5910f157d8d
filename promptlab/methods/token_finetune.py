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

A large backbone (gemma3-270m: 268M weights, 170M of them its embeddings) does not fit full
fine-tuning with AdamW in a few GB: `train_layers` N trains only the top N transformer layers and
the head, the embeddings and the layers below staying frozen (no gradient, no optimizer state, and
the backward pass stops at the lowest trained layer). The head reads the backbone's hidden states,
never a language-model head's vocabulary logits. `precision` auto runs the forwards in bfloat16
(autocast) where the hardware computes it natively; the trained weights stay float32.

A causal model's word sees only the words before it, so it cannot tell where an entity starts from
what follows. `echo` reads each sentence (window) twice and tags the words of the second reading,
which have seen the whole sentence (Springer et al., 2024, "Repetition Improves Language Model
Embeddings"): twice the tokens, so a window holds half the words.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from promptlab.metrics.entities import entity_metrics
from promptlab.data.tags import OUTSIDE, spans_of, to_iob2
from promptlab.data.words import joined_with_offsets
from promptlab.errors import UserError
from promptlab.backends.models import dtype_name, model_source, resolve_device, resolve_dtype, weights_fingerprint
from promptlab.methods.context import TrainingOptions, require_choice
from promptlab.methods.training import autocast

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
    train_layers: int = 0  # 0: every weight; N: the top N transformer layers and the head, the rest frozen
    precision: str = "auto"  # of the forwards: auto (bfloat16 where native), bfloat16 or float32
    echo: bool = False  # read each sentence twice, tag the second reading (causal models: context on both sides)

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.train_layers, int) or isinstance(self.train_layers, bool) or self.train_layers < 0:
            raise UserError(f"option train_layers must be a whole number of layers, 0 for all, got "
                            f"{self.train_layers!r}", fix="pass --option train_layers=4, for instance")
        require_choice("precision", self.precision, PRECISIONS)
        if not isinstance(self.echo, bool):
            raise UserError(f"option echo must be true or false, got {self.echo!r}", fix="pass --option echo=true")


PRECISIONS = ("auto", "bfloat16", "float32")


def tag_names(types: Sequence[str]) -> list[str]:
    return [OUTSIDE] + [f"{prefix}-{name}" for name in types for prefix in ("B", "I")]


class TokenTagger:
    """A token-classification model with its tokenizer: IOB2 tags (and a score) for pre-tokenised sentences."""

    def __init__(self, model, tokenizer, types: Sequence[str], device: torch.device, max_tokens: int = 256,
                 precision: torch.dtype = torch.float32, echo: bool = False):
        self.model, self.tokenizer, self.types, self.device = model, tokenizer, list(types), device
        self.tags = tag_names(types)
        self.max_tokens = max_tokens
        self.precision = precision  # of the forwards (autocast); the weights stay as loaded
        self.echo = echo

    @classmethod
    def load(cls, name: str, types: Sequence[str], *, device: str = "auto", seed: int = 0,
             max_tokens: int = 256, precision: str = "float32", echo: bool = False) -> "TokenTagger":
        """A fresh head (seeded) on the named model: an alias, a folder, or a hub id; forwards in `precision`
        (auto: bfloat16 where the hardware runs it natively)."""
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
        return cls(model.to(chosen).eval(), tokenizer, types, chosen, max_tokens, resolve_dtype(precision, chosen),
                   echo)

    def provenance(self) -> dict:
        """Which weights, where and in what precision (the fingerprint: `model_fingerprint`, of the backbone)."""
        return {"model_source": self.model.name_or_path, "model_kind": "token-classification",
                "device": str(self.device), "dtype": dtype_name(self.model.dtype),
                "precision": dtype_name(self.precision)}

    def encode(self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]] | None = None):
        """Model inputs; the first sub-token of each word (its position, or -1 when truncated away);
        with `tags`, the labels (-100 off first sub-tokens)."""
        encoded = self.tokenizer([list(tokens) for tokens in sentences], is_split_into_words=True, truncation=True,
                                 max_length=self._window_tokens())
        rows = [self._read(encoded["input_ids"][row], encoded.word_ids(row)) for row in range(len(sentences))]
        batch = self.tokenizer.pad({"input_ids": [ids for ids, _ in rows]}, return_tensors="pt")
        firsts = torch.full((len(sentences), max(map(len, sentences))), -1, dtype=torch.long)
        for row, (ids, word_ids) in enumerate(rows):
            shift = batch["input_ids"].shape[1] - len(ids) if self.tokenizer.padding_side == "left" else 0
            previous = None
            for position, word in enumerate(word_ids):
                if word is not None and word != previous:
                    firsts[row, word] = position + shift
                previous = word
        labels = None
        if tags is not None:
            labels = torch.full(batch["input_ids"].shape, IGNORED, dtype=torch.long)
            for row, row_tags in enumerate(tags):
                for word, tag in enumerate(row_tags):
                    if firsts[row, word] >= 0:
                        labels[row, firsts[row, word]] = self.tags.index(tag)
        inputs = {name: tensor.to(self.device) for name, tensor in batch.items()}
        return inputs, firsts, labels

    def _window_tokens(self) -> int:
        """Sub-tokens of a sentence (window) as tokenised: max_tokens, or with `echo` the special tokens and half
        the rest, as the words are read twice."""
        specials = self.tokenizer.num_special_tokens_to_add()
        return specials + (self.max_tokens - specials) // 2 if self.echo else self.max_tokens

    def _read(self, ids: list[int], word_ids: list[int | None]) -> tuple[list[int], list[int | None]]:
        """A tokenised window as the model reads it: as it is, or with `echo` its words again after it, the words
        placed (word ids) in that second reading only."""
        if not self.echo:
            return list(ids), list(word_ids)
        words = [position for position, word in enumerate(word_ids) if word is not None]
        return list(ids) + [ids[position] for position in words], \
            [None] * len(word_ids) + [word_ids[position] for position in words]

    def autocast(self):
        """The forwards' precision (autocast)."""
        return autocast(self.device.type, self.precision)

    def loss(self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]]) -> torch.Tensor:
        inputs, _, labels = self.encode(sentences, tags)
        with self.autocast():
            logits = self.model(**inputs).logits.float()
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.to(self.device).flatten(),
                                                 ignore_index=IGNORED)

    def predict(self, sentences: Sequence[Sequence[str]], batch_size: int = 32) -> list[tuple[list[str], list[float]]]:
        """Per sentence: IOB2 tags (an I- that starts an entity read as B-) and each word's tag probability."""
        results: list = [None] * len(sentences)
        by_length = sorted(range(len(sentences)), key=lambda index: len(sentences[index]))  # less padding
        with torch.inference_mode(), self.autocast():
            for start in range(0, len(sentences), batch_size):
                chunk = by_length[start:start + batch_size]
                words = [sentences[index] for index in chunk]
                for index, probabilities in zip(chunk, self.per_word(words, batch_size, self._probabilities)):
                    best = probabilities.argmax(-1)
                    tags = [self.tags[int(position)] for position in best]
                    scores = probabilities.gather(-1, best[:, None])[:, 0].tolist()
                    results[index] = (to_iob2(tags, "IOB2", self.types)[0], scores)
        return results

    def _probabilities(self, inputs: dict) -> torch.Tensor:
        return self.model(**inputs).logits.float().softmax(-1).cpu()

    def per_word(self, sentences: Sequence[Sequence[str]], batch_size: int,
                 outputs: Callable[[dict], torch.Tensor], windows: list[Window] | None = None) -> list[torch.Tensor]:
        """Per sentence, [words, dim]: `outputs(inputs)` ([batch, sub-tokens, dim]) at the sub-token that reads each
        word (`windows`: by default `word_windows`), taken from the window (of the overlapping windows a long
        sentence is cut into) where that sub-token is most central."""
        windows = self.word_windows(sentences) if windows is None else windows
        best: list = [None] * len(sentences)
        margin = [[-1] * len(tokens) for tokens in sentences]  # the chosen window's context on the nearer side
        for first in range(0, len(windows), batch_size):
            chunk = windows[first:first + batch_size]
            batch = self.tokenizer.pad({"input_ids": [window.ids for window in chunk]}, return_tensors="pt")
            computed = outputs({name: tensor.to(self.device) for name, tensor in batch.items()})
            for offset, window in enumerate(chunk):
                if best[window.sentence] is None:
                    best[window.sentence] = computed.new_zeros(len(sentences[window.sentence]), computed.shape[-1])
                shift = computed.shape[1] - len(window.ids) if self.tokenizer.padding_side == "left" else 0
                for word, position in window.places:
                    context = min(position - window.content[0], window.content[-1] - position)
                    if context > margin[window.sentence][word]:
                        margin[window.sentence][word] = context
                        best[window.sentence][word] = computed[offset, position + shift]
        return best

    def word_windows(self, sentences: Sequence[Sequence[str]]) -> list[Window]:
        """Each word tokenised on its own, read at its first sub-token; sentences longer than a window in overlapping
        windows (each half the last one's)."""
        windows = self.tokenizer([list(tokens) for tokens in sentences], is_split_into_words=True, truncation=True,
                                 max_length=self._window_tokens(), stride=self._window_content() // 2,
                                 return_overflowing_tokens=True)
        owners = windows["overflow_to_sample_mapping"]
        read = []
        for row, sentence in enumerate(owners):
            ids, word_ids = windows["input_ids"][row], windows.word_ids(row)
            content = [position for position, word in enumerate(word_ids) if word is not None]
            # a later window may open inside a word; that word's first sub-token is in the window before
            previous = word_ids[content[0]] if content and row and owners[row - 1] == sentence else None
            places = []
            for position, word in enumerate(word_ids):
                if word is not None and word != previous:
                    places.append((word, position))
                previous = word
            read.append(self._echoed(Window(sentence, ids, content, places)))
        return read

    def text_windows(self, sentences: Sequence[Sequence[str]]) -> tuple[list[Window], list[list[bool]]]:
        """The words joined into text (promptlab.data.words.join_tokens) and tokenised as the model tokenises text,
        each word read at the sub-token that holds its first character (several words may share one); and per
        sentence, whether each word begins its sub-token."""
        texts, starts = zip(*(joined_with_offsets(tokens) for tokens in sentences))
        windows = self.tokenizer(list(texts), truncation=True, max_length=self._window_tokens(),
                                 stride=self._window_content() // 2, return_overflowing_tokens=True,
                                 return_offsets_mapping=True)
        owners = windows["overflow_to_sample_mapping"]
        begins = [[False] * len(tokens) for tokens in sentences]
        read = []
        for row, sentence in enumerate(owners):
            ids, offsets = windows["input_ids"][row], windows["offset_mapping"][row]
            content = [position for position, part in enumerate(windows.sequence_ids(row)) if part is not None]
            places = []
            for word, character in enumerate(starts[sentence]):
                holder = next((position for position in content
                               if offsets[position][0] <= character < offsets[position][1]), None)
                if holder is not None:
                    places.append((word, holder))
                    begins[sentence][word] = offsets[holder][0] == character
            read.append(self._echoed(Window(sentence, ids, content, places)))
        return read, begins

    def _echoed(self, window: Window) -> Window:
        """The window as the model reads it: as it is, or with `echo` its text again after it, read there."""
        if not self.echo:
            return window
        again = {position: len(window.ids) + index for index, position in enumerate(window.content)}
        return Window(window.sentence, list(window.ids) + [window.ids[position] for position in window.content],
                      list(again.values()), [(word, again[position]) for word, position in window.places])

    def _window_content(self) -> int:
        content = self._window_tokens() - self.tokenizer.num_special_tokens_to_add()
        if content < 2:
            least = self.tokenizer.num_special_tokens_to_add() + 16
            raise UserError(f"max_tokens {self.max_tokens} leaves no room for text beside the model's special "
                            "tokens", fix=f"set --option max_tokens to {least} or more")
        return content


@dataclass(frozen=True)
class Window:
    """A run of a sentence's sub-tokens as the model reads it."""

    sentence: int  # which sentence of the batch
    ids: list[int]
    content: list[int]  # positions of the text's sub-tokens (the special tokens left out)
    places: list[tuple[int, int]]  # (word, position of the sub-token that reads it)


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
    """Fine-tune every weight (or, with `train_layers`, the top layers and the head); keep the step with the best
    dev F1 (step 0, the untrained head, included)."""
    torch.manual_seed(seed)
    model = tagger.model.train(False)  # eval mode: no dropout, so the same seed gives the same numbers
    trained = trainable(model, options.train_layers)
    optimizer = torch.optim.AdamW(trained.values(), lr=options.lr, weight_decay=options.weight_decay)
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
        best = (step, f1, {name: tensor.detach().clone() for name, tensor in trained.items()})
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
        torch.nn.utils.clip_grad_norm_(trained.values(), 1.0)
        optimizer.step()
        seconds += time.perf_counter() - started
        losses.append(round(loss.item(), 4))
        if step % options.eval_every == 0 or step == options.steps:
            stale = 0 if evaluate(step) else stale + 1
            if options.patience and stale >= options.patience:
                break
    model.requires_grad_(False)
    if best is not None:
        with torch.no_grad():
            for name, tensor in best[2].items():
                trained[name].copy_(tensor)
    return TaggerTraining(steps=step, best_step=best[0] if best else step, best_dev_f1=best[1] if best else None,
                          losses=losses, dev_history=history, seconds_per_step=round(seconds / max(step, 1), 4))


def trainable(model: torch.nn.Module, train_layers: int) -> dict[str, torch.nn.Parameter]:
    """The parameters training updates, by name (the others get no gradient): every one, or the top `train_layers`
    transformer layers of the backbone and everything outside the backbone (the head)."""
    if not train_layers:
        model.requires_grad_(True)
        return dict(model.named_parameters())
    backbone = model.base_model
    layers = transformer_layers(backbone)
    if train_layers > len(layers):
        raise UserError(f"option train_layers={train_layers}, but the model has {len(layers)} transformer layers",
                        fix=f"pass --option train_layers={len(layers)} or fewer (0 trains every weight)")
    model.requires_grad_(False)
    head = [child for child in model.children() if child is not backbone]
    for module in [*layers[len(layers) - train_layers:], *head]:
        module.requires_grad_(True)
    return {name: parameter for name, parameter in model.named_parameters() if parameter.requires_grad}


def transformer_layers(backbone: torch.nn.Module) -> torch.nn.ModuleList:
    """The backbone's stack of transformer layers: its longest ModuleList."""
    return max((module for module in backbone.modules() if isinstance(module, torch.nn.ModuleList)), key=len,
               default=torch.nn.ModuleList())


def spans_with_scores(tags: Sequence[str], scores: Sequence[float]) -> list[tuple]:
    """(span, score) for each entity: the mean probability of its words' tags."""
    return [(span, sum(scores[span.start:span.end]) / (span.end - span.start)) for span in spans_of(tags)]
