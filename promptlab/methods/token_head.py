"""token-head: a logistic-regression tagger on a frozen model's token features, decoded into valid IOB2.

The few-shot NER line of NNShot / StructShot (Yang & Katiyar, EMNLP 2020): with ten sentences to learn
from, fine-tuning a backbone mostly learns its sample, while a linear tagger on frozen features has
little to overfit. Each word's features are the hidden states of one or more layers of the model at its
first sub-token (several layers side by side); middle layers tag better than the last, which a causal
LM spends on predicting the next token. `echo` (on by default) reads each sentence twice and takes the
features of the second reading, which has seen the whole sentence (a causal model's word sees only
what precedes it otherwise). The backbone runs only up to the deepest layer read.

`reading` text (the default) joins the words into text and lets the model tokenise it as it was
trained to: gemma3-270m's vocabulary holds multi-character Chinese words (北京, 国务院), which one
character at a time would never show it. Each word then reads the sub-token holding its first
character, plus a 0/1 feature saying whether it begins there (北 and 京 share 北京's states; only 北
begins it). `reading` words tokenises each word on its own, as token-finetune does.

The tagger is scikit-learn's logistic regression on standardised features, classes weighted inversely
to their frequency (O outnumbers every entity tag several times over), over the IOB2 tags, fitted on
the k-shot train sentences. With several `c_values`, each is fitted and decoded on the k-shot dev
sentences, and the one with the best dev entity F1 is kept (the first on a tie). Decoding takes the
IOB2-valid tag sequence with the highest summed log-probability (promptlab.methods.tag_decoding), so a
long name is not cut into pieces by one stray tag (on the dev sample below: F1 0.402 against 0.266 for
each word's most probable tag). `fit_dev` fits on the dev sentences too. Nothing is trained by
backpropagation: a seed costs one forward of its sentences, whose word features are kept in the
embeddings cache (per backbone fingerprint, layers, reading, echo and precision), so the seeds of a
run share their test sentences. Each span's score is the mean probability of its words' tags.

The defaults were chosen on msra-ner with gemma3-270m at k = 10 per type, seeds 13 / 21 / 42, on a
dev sample of 200 train-split sentences outside every k-shot sample (docs/results.md): layer 6 of 18
(mean F1 0.402 reading text; layers 8 / 10 / 12: 0.371 / 0.397 / 0.361; layer 3: 0.269;
layers 6 and 10 side by side: 0.412, for features twice as wide and four more layers run), text over
words (layer 6: 0.402 against 0.322), C = 0.1.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from promptlab.backends.embedding_cache import cached_rows, encoder_key
from promptlab.backends.models import weights_fingerprint
from promptlab.errors import UserError
from promptlab.methods.context import require_choice
from promptlab.methods.logistic_head import FittedHead, check_c_values, head_tensors, saved_head
from promptlab.methods.tag_decoding import best_tags
from promptlab.methods.token_finetune import PRECISIONS, TokenTagger, tag_names, transformer_layers
from promptlab.metrics.entities import entity_metrics


@dataclass
class TokenHeadOptions:
    # the hidden layers read (1: the output of the first transformer layer), one or several side by side: 6 or
    # "6,10"; gemma3-270m on msra-ner dev tags best around layer 6 of 18
    layers: int | str = 6
    # tried, each fitted on the k-shot train sentences; the best F1 on the k-shot dev sentences is kept. One value
    # by default: on msra-ner (gemma3-270m, k = 10) a 200-sentence dev sample of the train split scored C = 0.03 /
    # 0.1 / 0.3 at 0.380 / 0.402 / 0.401, and picking among them on the ten dev sentences of each seed 0.381
    c_values: list[float] = field(default_factory=lambda: [0.1])
    # also fit on the k-shot dev sentences (twice the labelled words; nothing is left to choose C on, so one C):
    # msra-ner k = 10, the 200-sentence dev sample: F1 0.402 -> 0.470
    fit_dev: bool = False
    echo: bool = True  # read each sentence twice, take the second reading's features (context on both sides)
    # text: the words joined into text and tokenised as the model tokenises text (gemma reads 北京 as one token,
    # which both characters then read, beside whether each begins it); words: each word tokenised on its own
    reading: str = "text"
    max_tokens: int = 256  # sub-tokens per window; longer sentences are read in overlapping windows
    # of the forwards: float32 (the measured choices), auto (bfloat16 where native: 1.8x faster on a CPU with
    # bfloat16, features off by up to 1 % of their largest value) or bfloat16
    precision: str = "float32"
    forward_batch: int = 16  # sentences per forward

    def __post_init__(self):
        self.layer_list()
        check_c_values(self.c_values)
        for name in ("echo", "fit_dev"):
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"option {name} must be true or false, got {getattr(self, name)!r}",
                                fix=f"pass --option {name}=true")
        if self.fit_dev and len(self.c_values) > 1:
            raise UserError(f"option fit_dev=true fits on the dev sentences too, so none is left to choose among "
                            f"c_values {self.c_values}", fix="pass one C, e.g. --option c_values=[0.1]")
        require_choice("precision", self.precision, PRECISIONS)
        require_choice("reading", self.reading, READINGS)
        for name in ("max_tokens", "forward_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"option {name} must be a positive whole number, got {value!r}")

    def layer_list(self) -> list[int]:
        parts = str(self.layers).split(",")
        if not all(part.strip().isdigit() and int(part) >= 1 for part in parts):
            raise UserError(f"option layers must be layer numbers from 1 up, one or several joined by commas, got "
                            f"{self.layers!r}", fix="pass --option layers=6 or --option layers=6,10")
        return [int(part) for part in parts]


READINGS = ("text", "words")
WORD_SEPARATOR, POSITION_MARK = "\x1f", "\x1e"  # unit and record separators: in no sentence's words


class LayerFeatures:
    """Per word, the hidden states of `layers` at the sub-token that reads it, side by side (and, reading text,
    1 where the word begins that sub-token, else 0); the backbone cut after the deepest of them (the layers
    above would only cost time)."""

    def __init__(self, tagger: TokenTagger, layers: Sequence[int], reading: str = "text", batch_size: int = 16,
                 cache_as: str | None = None):
        stack = transformer_layers(tagger.model.base_model)
        if max(layers) > len(stack):
            raise UserError(f"option layers={','.join(map(str, layers))}, but the model has {len(stack)} "
                            "transformer layers", fix=f"pass layer numbers from 1 to {len(stack)}")
        del stack[max(layers):]
        self.tagger, self.layers, self.reading, self.batch_size = tagger, list(layers), reading, batch_size
        self.read: dict[int, torch.Tensor] = {}
        for number in set(layers):
            stack[number - 1].register_forward_hook(self._keep(number))
        # given the backbone's fingerprint, rows are kept in the embeddings cache (promptlab.backends.embedding_cache)
        self.cache_key = None if cache_as is None else encoder_key(
            f"{cache_as} layers={self.layers} reading={reading} echo={tagger.echo} max_tokens={tagger.max_tokens} "
            f"precision={tagger.precision}",
            tagger.model)

    def _keep(self, number: int):
        def hook(module, inputs, output):
            self.read[number] = output[0] if isinstance(output, tuple) else output
        return hook

    def _outputs(self, inputs: dict) -> torch.Tensor:
        self.tagger.model.base_model(**inputs)
        return torch.cat([self.read.pop(number).float() for number in self.layers], dim=-1).cpu()

    def __call__(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """[words, features] per sentence."""
        if not sentences:  # fit_dev leaves no dev sentences; a tokenizer refuses an empty batch
            return []
        if self.cache_key is None:
            return self._computed(sentences)
        # one cache row per word, keyed by its sentence and position: the seeds of a run share the test sentences
        keys = [f"{WORD_SEPARATOR.join(tokens)}{POSITION_MARK}{word}" for tokens in sentences
                for word in range(len(tokens))]
        rows = cached_rows(self.cache_key, keys, self._rows_of)
        ends = np.cumsum([len(tokens) for tokens in sentences])
        return np.split(rows, ends[:-1])

    def _rows_of(self, keys: Sequence[str]) -> np.ndarray:
        """The rows of words named by their cache keys (each computed with its whole sentence)."""
        parsed = [key.rpartition(POSITION_MARK) for key in keys]
        texts = list(dict.fromkeys(text for text, _, _ in parsed))
        computed = dict(zip(texts, self._computed([text.split(WORD_SEPARATOR) for text in texts])))
        return np.stack([computed[text][int(word)] for text, _, word in parsed])

    def _computed(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        if self.reading == "words":
            with torch.inference_mode(), self.tagger.autocast():
                return [rows.numpy() for rows in self.tagger.per_word(sentences, self.batch_size, self._outputs)]
        windows, begins = self.tagger.text_windows(sentences)
        with torch.inference_mode(), self.tagger.autocast():
            read = self.tagger.per_word(sentences, self.batch_size, self._outputs, windows)
        return [np.concatenate([rows.numpy(), np.array(begun, dtype=np.float32)[:, None]], axis=1)
                for rows, begun in zip(read, begins)]


class TokenHead:
    """A fitted tagger: IOB2 tags and each word's tag probability from word features."""

    def __init__(self, tensors: dict[str, torch.Tensor], classes: list[int], tags: list[str]):
        self.tensors, self.classes, self.tags = tensors, classes, tags
        self.logits = saved_head(tensors, classes, len(tags))

    def tag(self, features: Sequence[np.ndarray]) -> list[tuple[list[str], list[float]]]:
        tagged = []
        for rows in features:
            log_probabilities = torch.log_softmax(self.logits(torch.from_numpy(rows)), dim=-1).numpy()
            tags = best_tags(log_probabilities, self.tags)
            chosen = [self.tags.index(tag) for tag in tags]
            tagged.append((tags, np.exp(log_probabilities[np.arange(len(tags)), chosen]).tolist()))
        return tagged


@dataclass
class FittedTagger:
    head: TokenHead
    c: float
    dev_f1: float | None
    dev_history: list[tuple[float, float]]  # (C, dev F1) for every C tried


def fit_tagger(train_features: Sequence[np.ndarray], train_tags: Sequence[Sequence[str]],
               dev_features: Sequence[np.ndarray], dev_tags: Sequence[Sequence[str]], types: Sequence[str],
               c_values: Sequence[float]) -> FittedTagger:
    """Fit the tagger for each C on the train words; keep the C whose decoded dev tags score the best entity F1
    (the first on a tie; without dev sentences, the first C)."""
    tags = tag_names(types)
    x = np.concatenate(train_features)
    y = np.array([tags.index(tag) for sentence in train_tags for tag in sentence])
    best, history = None, []
    for c in c_values:
        head = _head(_classifier(c).fit(x, y), c, tags)
        if not dev_tags:
            return FittedTagger(head, c, None, [])
        f1 = entity_metrics(list(dev_tags), [tagged for tagged, _ in head.tag(dev_features)], types)["f1"]
        history.append((c, round(f1, 4)))
        if best is None or f1 > best.dev_f1:
            best = FittedTagger(head, c, f1, history)
    return best


def _classifier(c: float):
    """Standardised features into a class-weighted logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=1000))


def _head(classifier, c: float, tags: list[str]) -> TokenHead:
    tensors, state = head_tensors(FittedHead(classifier, c, 0.0))
    return TokenHead(tensors, state["classes"], tags)


def backbone_fingerprint(tagger: TokenTagger) -> str:
    """The frozen backbone's weights fingerprint, taken before it is cut (what an artefact is tied to)."""
    return weights_fingerprint(tagger.model.base_model)
