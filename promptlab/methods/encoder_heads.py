"""Few-shot methods on a sentence encoder instead of the scoring LM: `head --encoder` and `setfit`.

`setfit` (Tunstall et al., 2022) first fine-tunes the encoder contrastively on the k-shot sample
through the `setfit` library, then fits the same logistic-regression head as `head`, with C chosen
on the k-shot dev set. Its `label-words` loss pairs each message with its label's verbalizer words
instead (through sentence-transformers, in-batch negatives), so what the label names mean joins the
few examples: the objective for many intents with informative names. Both methods classify the
example's own text (its template fields), never the prompt.
Their artefacts hold the head's arrays (weights.safetensors) and, for setfit, the fine-tuned
encoder as a sentence-transformers folder (encoder/); promptlab.apply.registry applies them.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from promptlab.methods.artefacts import Trained
from promptlab.backends.sentence_encoders import ENCODER_FOLDER, LoadedEncoder, load_encoder
from promptlab.backends.features import example_text
from promptlab.backends.models import weights_fingerprint
from promptlab.methods.logistic_head import FittedHead, check_c_values, fit_head, head_probabilities, head_tensors
from promptlab.errors import UserError
from promptlab.methods.context import MethodContext, MethodOutcome, require_choice, require_positive

DEFAULT_ENCODER = "minilm-l6"
LOSSES = ("cosine", "triplet", "label-words")
# epochs and learning rate when left out: label-words learns from one pair per example and word,
# so it takes more, gentler epochs (Banking77, k = 10: 6 epochs at 5e-5 beat 3 at 1e-4)
LOSS_DEFAULTS = {"cosine": (3, 1e-4), "triplet": (3, 1e-4), "label-words": (6, 5e-5)}
PRECISIONS = ("float32", "bfloat16")


@dataclass
class SetFitOptions:
    encoder: str = DEFAULT_ENCODER
    # cosine: SetFit's pairs (same label 1, else 0) under a cosine-similarity loss;
    # triplet: every (anchor, positive, negative) of a batch grouped by label (BatchAllTripletLoss),
    # which learns from many more comparisons per forward;
    # label-words: (message, one of its label's words) pairs, every other pair of the batch a negative
    # (MultipleNegativesRankingLoss; batches never hold a text twice, so at most one pair per label
    # word: meant for tasks with many labels, where it fits the label names' meaning to the domain)
    loss: str = "triplet"
    num_iterations: int = 5  # cosine: pairs drawn per training example (SetFit's R; the paper uses 20)
    epochs: int | None = None  # None: LOSS_DEFAULTS
    steps: int | None = None  # a cap on contrastive steps; None: the epochs decide
    lr: float | None = None  # None: LOSS_DEFAULTS
    batch_size: int = 64
    c_values: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0])  # chosen on dev
    # label-words: the contrastive training's forwards and backwards under bfloat16 autocast (the weights
    # and the optimizer stay float32); about 2x faster per step for mpnet-base on a CPU with AVX512-BF16
    precision: str = "float32"

    def __post_init__(self):
        require_choice("loss", self.loss, LOSSES)
        require_choice("precision", self.precision, PRECISIONS)
        if self.precision != "float32" and self.loss != "label-words":
            raise UserError(f"option precision={self.precision} applies to loss=label-words only",
                            fix="add --option loss=label-words, or leave precision out")
        default_epochs, default_lr = LOSS_DEFAULTS[self.loss]
        self.epochs = default_epochs if self.epochs is None else self.epochs
        self.lr = default_lr if self.lr is None else self.lr
        for name in ("num_iterations", "epochs", "lr", "batch_size"):
            require_positive(name, getattr(self, name))
        if self.steps is not None:
            require_positive("steps", self.steps)
        check_c_values(self.c_values)

    def training_arguments(self, folder: str, seed: int):
        from sentence_transformers.losses import BatchAllTripletLoss
        from setfit import TrainingArguments
        loss = {"loss": BatchAllTripletLoss} if self.loss == "triplet" else {"num_iterations": self.num_iterations}
        return TrainingArguments(output_dir=folder, batch_size=self.batch_size, num_epochs=self.epochs,
                                 max_steps=self.steps or -1, body_learning_rate=self.lr, seed=seed,
                                 save_strategy="no", report_to="none", show_progress_bar=False,
                                 logging_strategy="no", **loss)

    def label_word_arguments(self, folder: str, seed: int, device_type: str):
        from sentence_transformers import SentenceTransformerTrainingArguments
        from sentence_transformers.sentence_transformer.training_args import BatchSamplers
        return SentenceTransformerTrainingArguments(
            output_dir=folder, per_device_train_batch_size=self.batch_size, num_train_epochs=self.epochs,
            max_steps=self.steps or -1, learning_rate=self.lr, warmup_steps=0.1, seed=seed, save_strategy="no",
            report_to="none", logging_strategy="no", disable_tqdm=True, batch_sampler=BatchSamplers.NO_DUPLICATES,
            # transformers refuses bf16 without a GPU unless told the training runs on the CPU
            bf16=self.precision == "bfloat16", use_cpu=device_type == "cpu")


def run_encoder_head(context: MethodContext, encoder_name: str, *, label_words: bool = False,
                     fit: Callable[..., FittedHead] | None = None) -> MethodOutcome:
    """`head --encoder`: the frozen encoder's embeddings, then the logistic-regression head (with the
    labels' verbalizer words among its rows when `label_words`; fitted by `fit`, as `_head_on` says)."""
    encoder = load_encoder(encoder_name, device=context.device)
    return _head_on(context, encoder, method="head", train_steps=0, details={}, encode=encoder.encode_frozen,
                    extra_rows=_word_rows(_label_words(context)) if label_words else None, fit=fit)


def run_setfit(context: MethodContext) -> MethodOutcome:
    options: SetFitOptions = context.options
    encoder = load_encoder(options.encoder, device=context.device, trainable=True)
    texts, gold = _texts(context, context.split.train), context.gold(context.split.train)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="promptlab-setfit-") as scratch:
        if options.loss == "label-words":
            words = _label_words(context)
            steps = _train_on_label_words(encoder, texts, gold, words,
                                          options.label_word_arguments(scratch, context.seed, encoder.model.device.type))
            # the encoder now places each label's words among its messages, so the words are examples for
            # the head too: at k = 1 they lift Banking77 from 0.57 to 0.71 (one message per intent says little)
            word_rows = _word_rows(words)
        else:
            steps = _train_on_pairs(encoder, texts, gold, options.training_arguments(scratch, context.seed))
            word_rows = None
    encoder.model.eval()
    details = {"encoder": options.encoder, "loss": options.loss, "contrastive_steps": steps,
               "seconds_per_step": round((time.perf_counter() - started) / max(steps, 1), 4)}
    return _head_on(context, encoder, method="setfit", train_steps=steps, details=details, extra_rows=word_rows,
                    encode=encoder.encode)


def _train_on_pairs(encoder: LoadedEncoder, texts: list[str], gold: list[int], arguments) -> int:
    """SetFit's contrastive step through the setfit library; returns the steps taken."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer
    trainer = Trainer(model=SetFitModel(model_body=encoder.model), args=arguments,
                      train_dataset=Dataset.from_dict({"text": texts, "label": gold}))
    trainer.train_embeddings(texts, gold, args=arguments)
    return trainer.st_trainer.state.global_step


def _train_on_label_words(encoder: LoadedEncoder, texts: list[str], gold: list[int],
                          words: list[list[str]], arguments) -> int:
    """Each message against each of its label's words, the batch's other words and messages as negatives."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    from transformers import PrinterCallback
    pairs = [(text, word) for text, label in zip(texts, gold) for word in words[label]]
    dataset = Dataset.from_dict({"anchor": [text for text, _ in pairs], "positive": [word for _, word in pairs]})
    trainer = SentenceTransformerTrainer(model=encoder.model, args=arguments, train_dataset=dataset,
                                         loss=MultipleNegativesRankingLoss(encoder.model))
    trainer.remove_callback(PrinterCallback)  # without progress bars it prints the run's summary dict to stdout
    trainer.train()
    return trainer.state.global_step


def _head_on(context: MethodContext, encoder: LoadedEncoder, *, method: str, train_steps: int, details: dict,
             encode: Callable[[list[str]], np.ndarray], extra_rows: tuple[list[str], list[int]] | None = None,
             fit: Callable[..., FittedHead] | None = None) -> MethodOutcome:
    """The logistic-regression head on the embeddings `encode` gives (the cache's for a frozen encoder);
    `extra_rows` (texts, labels) join its training set. `fit(train_x, train_y, dev_x, dev_y, unlabelled=)` fits
    it, `unlabelled()` giving the rows of the context's unlabelled texts (None: the C that does best on dev)."""
    fit = fit or (lambda train_x, train_y, dev_x, dev_y, unlabelled: fit_head(train_x, train_y, dev_x, dev_y,
                                                                              context.options.c_values))
    split = context.split
    train_texts, train_gold = _texts(context, split.train), context.gold(split.train)
    if extra_rows:
        train_texts, train_gold = train_texts + extra_rows[0], train_gold + extra_rows[1]
    train_x, dev_x, test_x = (encode(texts) for texts in
                              (train_texts, _texts(context, split.dev), _texts(context, context.test_examples)))
    fitted = fit(train_x, train_gold, dev_x, context.gold(split.dev),
                 unlabelled=lambda: encode(_texts(context, context.unlabelled)))
    probabilities = head_probabilities(fitted, test_x, len(context.labels))
    tensors, state = head_tensors(fitted)
    trained = Trained(method, state={**state, "layer": -1, "encoder": encoder.name,
                                     "encoder_fingerprint": encoder.fingerprint,
                                     "encoder_folder": ENCODER_FOLDER if method == "setfit" else None,
                                     # the fine-tuned copy's own weights, checked when it loads
                                     "encoder_copy_fingerprint": weights_fingerprint(encoder.model)
                                     if method == "setfit" else None},
                      tensors=tensors,
                      write_files=(lambda folder: encoder.save(folder / ENCODER_FOLDER)) if method == "setfit" else None)
    return MethodOutcome(probabilities.argmax(1).tolist(), fitted.dev_accuracy, train_steps,
                         {**details, "c": fitted.c}, trained=trained, probabilities=probabilities.tolist())


def _label_words(context: MethodContext) -> list[list[str]]:
    """Each label's verbalizer words, in label order, without the leading space causal LMs need."""
    return [[word.strip() for word in context.setup.verbalizer.words[label]] for label in context.labels]


def _word_rows(words: list[list[str]]) -> tuple[list[str], list[int]]:
    """Every label word as a training row of its label."""
    rows = [(word, index) for index, label_words in enumerate(words) for word in label_words]
    return [word for word, _ in rows], [index for _, index in rows]


def _texts(context: MethodContext, examples) -> list[str]:
    return [example_text(context.setup.template, example) for example in examples]
