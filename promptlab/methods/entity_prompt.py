"""The methods behind `fewshot` (and `zeroshot`) for entity tasks, registered in promptlab.methods.

    run_token_finetune(context) / run_token_head(context) / run_entity_prompt(context)
        -> EntityOutcome (per test sentence, its spans)

`token-finetune` fine-tunes a token-classification model (promptlab.methods.token_finetune);
`token-head` fits a tagger on a frozen model's token features (promptlab.methods.token_head);
`entity-prompt` types candidate spans through the label scorer (promptlab.methods.entity_candidates),
zero-shot or with a soft prompt trained on the k-shot sample's candidates. The entities kind
(promptlab.kinds.entities) samples the k-shot split, runs one and scores its spans with seqeval.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Callable

from promptlab.methods.artefacts import Trained, save_trained, trained_identity
from promptlab.backends import make_backend
from promptlab.catalog.catalog import Setup
from promptlab.methods import entity_candidates as prompting
from promptlab.data.tags import Span
from promptlab.methods.token_finetune import (
    TokenFinetuneOptions,
    TokenTagger,
    spans_with_scores,
    train_tagger,
)
from promptlab.methods.token_head import LayerFeatures, TokenHeadOptions, backbone_fingerprint, fit_tagger
from promptlab.methods.context import TrainingOptions, require_choice, require_positive
from promptlab.methods.softprompt import INITS, TENSOR_NAME, SoftPrompt, initial_embeddings
from promptlab.backends.models import LoadedModel
from promptlab.data.sampling import KShotSplit
from promptlab.backends.scoring import CALIBRATIONS, LabelScorer
from promptlab.catalog.task import Task
from promptlab.methods.training import frozen, train
from promptlab.catalog.verbalizer import AGGREGATIONS

SentenceSpans = list[tuple[Span, float]]


@dataclass
class EntityPromptOptions(TrainingOptions):
    """Zero-shot uses the candidate options and `calibrate`; few-shot trains a soft prompt with the rest."""

    steps: int = 30
    lr: float = 0.01
    batch_size: int = 16
    eval_every: int = 5
    patience: int = 3
    weight_decay: float = 0.0
    max_span: int = 3  # tokens per candidate span
    candidates: str = "capitalised"  # capitalised | all
    # zero-shot only (a trained prompt learns the bias): contextual lifts SmolLM2's F1 on conll2003-sample
    # from 0.35 (none) and 0.42 (pmi) to 0.51, on the first 10 test sentences
    calibrate: str = "contextual"
    aggregate: str = "logsumexp"  # how the words of one answer combine
    prompt_length: int = 8
    init: str = "labels"
    negatives: int = 3  # non-entity candidates trained on per entity, drawn with the seed

    def __post_init__(self):
        super().__post_init__()
        for name in ("max_span", "prompt_length", "negatives"):
            require_positive(name, getattr(self, name))
        require_choice("candidates", self.candidates, prompting.CANDIDATE_FILTERS)
        require_choice("calibrate", self.calibrate, CALIBRATIONS)
        require_choice("aggregate", self.aggregate, AGGREGATIONS)
        require_choice("init", self.init, INITS)


@dataclass
class EntityContext:
    task: Task
    setup: Setup | None  # template and verbalizer: entity-prompt only
    model: str
    device: str
    test_examples: list[dict]
    seed: int
    options: object
    split: KShotSplit | None = None  # None: zero-shot
    loaded: Callable[[], LoadedModel] | None = None  # the shared scoring model, loaded on first use
    save_to: str | None = None

    @property
    def types(self) -> list[str]:
        return self.task.labels

    def sentences(self, examples: list[dict]) -> list[list[str]]:
        return [example["tokens"] for example in examples]


@dataclass
class EntityOutcome:
    spans: list[SentenceSpans]  # per test sentence
    dev_score: float | None = None  # what chose the step: entity F1 (token-finetune), candidate accuracy
    dev_metric: str = "f1"
    train_steps: int = 0
    details: dict = field(default_factory=dict)
    save: Callable[[dict], str] | None = None
    weights: dict = field(default_factory=dict)  # what it ran on: model_source, model_kind, device, dtype


def run_token_finetune(context: EntityContext) -> EntityOutcome:
    options: TokenFinetuneOptions = context.options
    tagger = TokenTagger.load(context.model, context.types, device=context.device, seed=context.seed,
                              max_tokens=options.max_tokens, precision=options.precision, echo=options.echo)
    training = train_tagger(tagger, context.split.train, context.split.dev, options, context.seed)
    predicted = tagger.predict(context.sentences(context.test_examples))
    outcome = EntityOutcome([spans_with_scores(tags, scores) for tags, scores in predicted], training.best_dev_f1,
                            "f1", training.steps, {"best_step": training.best_step, "dev_history": training.dev_history,
                                             "seconds_per_step": training.seconds_per_step,
                                             "losses": training.losses}, weights=tagger.provenance())
    if context.save_to:
        trained = Trained("token-finetune", state={"types": context.types, "max_tokens": options.max_tokens,
                                                   "precision": tagger.provenance()["precision"],
                                                   "echo": options.echo},
                          model=tagger.model, tokenizer=tagger.tokenizer)
        outcome.save = lambda metrics: _save(context, trained, {"model": context.model}, metrics)
    return outcome


def run_token_head(context: EntityContext) -> EntityOutcome:
    options: TokenHeadOptions = context.options
    tagger = TokenTagger.load(context.model, context.types, device=context.device, max_tokens=options.max_tokens,
                              precision=options.precision, echo=options.echo)
    fingerprint = backbone_fingerprint(tagger)
    features = LayerFeatures(tagger, options.layer_list(), options.reading, options.forward_batch, cache_as=fingerprint)
    train, dev = context.split.train, context.split.dev
    if options.fit_dev:
        train, dev = train + dev, []
    fitted = fit_tagger(features(context.sentences(train)), [example["tags"] for example in train],
                        features(context.sentences(dev)), [example["tags"] for example in dev], context.types,
                        options.c_values)
    predicted = fitted.head.tag(features(context.sentences(context.test_examples)))
    outcome = EntityOutcome([spans_with_scores(tags, scores) for tags, scores in predicted], fitted.dev_f1, "f1",
                            details={"c": fitted.c, "dev_history": fitted.dev_history},
                            weights=tagger.provenance())
    if context.save_to:
        trained = Trained("token-head", tensors=fitted.head.tensors, state={
            "types": context.types, "classes": fitted.head.classes, "c": fitted.c, "layers": options.layer_list(),
            "echo": options.echo, "reading": options.reading, "max_tokens": options.max_tokens,
            "precision": tagger.provenance()["precision"]})
        identity = {"model": context.model, "model_fingerprint": fingerprint}
        outcome.save = lambda metrics: _save(context, trained, identity, metrics)
    return outcome


def _save(context: EntityContext, trained: Trained, identity: dict, metrics: dict) -> str:
    """The trained artefact (promptlab.methods.artefacts) with what it was trained on and how it scored."""
    return str(save_trained(context.save_to, trained, {
        "task": context.task.name, **identity, "seed": context.seed, "options": asdict(context.options),
        "sample_checksum": context.split.checksum, "test": {"n": metrics["n"], "f1": metrics["f1"]}}))


def run_entity_prompt(context: EntityContext) -> EntityOutcome:
    options: EntityPromptOptions = context.options
    loaded = context.loaded()
    template, answers = context.setup.template, context.setup.verbalizer.labels
    backend = make_backend(loaded.model, loaded.tokenizer, loaded.kind, loaded.device)
    scorer = LabelScorer(backend, template, context.setup.verbalizer, batch_size=32, aggregate=options.aggregate,
                         calibrate=options.calibrate if context.split is None else "none")
    details, dev_score, steps, save = {}, None, 0, None
    if context.split is not None:
        soft_prompt, result = _train_soft_prompt(context, scorer, answers)
        scorer.soft_prompt = soft_prompt
        dev_score, steps = result.best_dev_accuracy, result.steps
        details = {"best_step": result.best_step, "dev_history": result.dev_history,
                   "seconds_per_step": round(result.seconds_per_step, 4)}
        if context.save_to:
            trained = Trained("entity-prompt", tensors={TENSOR_NAME: soft_prompt.cpu()},
                              state={"max_span": options.max_span, "candidates": options.candidates},
                              scoring={"calibrate": "none", "aggregate": options.aggregate})
            save = lambda metrics: _save(context, trained, trained_identity(context.setup, loaded), metrics)  # noqa: E731
    spans = prompting.recognise(scorer, template, context.sentences(context.test_examples), answers,
                                max_span=options.max_span, keep=options.candidates)
    return EntityOutcome(spans, dev_score, "candidate_accuracy", steps, details, save, loaded.provenance())


def _train_soft_prompt(context: EntityContext, scorer: LabelScorer, answers: list[str]):
    options: EntityPromptOptions = context.options
    loaded = context.loaded()
    rng = random.Random(context.seed)
    train_prompts, train_gold = _candidate_sample(context, context.split.train, answers, rng)
    dev_prompts, dev_gold = _candidate_sample(context, context.split.dev, answers, rng)
    label_words = [word for words in context.setup.verbalizer.words.values() for word in words]
    initial = initial_embeddings(loaded.model, loaded.tokenizer, length=options.prompt_length, init=options.init,
                                 seed=context.seed, label_words=label_words)
    soft_prompt = SoftPrompt(initial).to(loaded.device)

    def label_logprobs(prompts):
        scorer.soft_prompt = soft_prompt()
        return scorer.label_logprobs(prompts)

    with frozen(loaded.model):
        result = train(soft_prompt, label_logprobs, train_prompts, train_gold, dev_prompts, dev_gold,
                       options.train_config(context.seed, loaded), description=f"entity-prompt seed {context.seed}")
    return soft_prompt().detach(), result


def _candidate_sample(context: EntityContext, examples: list[dict], answers: list[str], rng: random.Random):
    """Every gold entity of the sentences, plus `negatives` non-entity candidates per entity (seeded)."""
    options: EntityPromptOptions = context.options
    sentences = context.sentences(examples)
    candidates, _ = prompting.candidate_prompts(context.setup.template, sentences, max_span=options.max_span,
                                                keep=options.candidates)
    gold = prompting.gold_answers(candidates, [example["tags"] for example in examples], answers)
    outside = answers.index(prompting.NOT_AN_ENTITY)
    entities = [prompting.Candidate(index, span) for index, example in enumerate(examples)
                for span in prompting.spans_of(example["tags"])]
    negatives = [candidate for candidate, answer in zip(candidates, gold) if answer == outside]
    rng.shuffle(negatives)
    chosen = entities + negatives[:options.negatives * len(entities)]
    rng.shuffle(chosen)
    prompts = [context.setup.template.render(prompting.span_fields(sentences[c.sentence], c.span)) for c in chosen]
    labels = [answers.index(c.span.type) if c.span.type else outside for c in chosen]
    return prompts, labels
