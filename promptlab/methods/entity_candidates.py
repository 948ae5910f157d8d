"""entity-prompt: named-entity recognition through the label scorer.

Every candidate span of a sentence (n-grams up to `max_span` tokens, optionally only capitalised
ones) is rendered with the task's template over `sentence` and `span`, and scored with a
verbalizer of the entity types plus the "not an entity" answer (promptlab.catalog.task.NOT_AN_ENTITY).
Spans whose best answer is a type are kept by decreasing probability, skipping any that overlaps
one already kept (greedy non-overlapping decoding).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from promptlab.data.tags import Span, spans_of, tags_of
from promptlab.data.words import is_cjk, join_tokens
from promptlab.catalog.task import NOT_AN_ENTITY
from promptlab.methods.pipeline import score_all
from promptlab.catalog.template import Prompt, Template

CANDIDATE_FILTERS = ("capitalised", "all")
# Capitalised words that begin English sentences and headlines far more often than they name anything.
STOPWORDS = frozenset("""a an the this that these those it its he she they we i you his her their our my
in on at of for to from by with as and or but if when while after before since until not no
is are was were be been has have had will would can could may might should do does did""".split())
# Chinese text has no capitals: a name there is a run of characters (one token each) that does not start or
# end with one of these function characters, which begin and end names far less often than they border them.
CJK_FUNCTION_CHARACTERS = frozenset("的了在是和与及或等也就都而被把从对为将向于这那个们我你他她它之其以所着过到上下中里说")
MAX_CJK_CANDIDATES = 64  # per sentence: n-grams of a 50-character sentence number ~150 before the filter


@dataclass(frozen=True)
class Candidate:
    sentence: int  # index of the sentence
    span: Span  # type unset ("")


def candidate_spans(tokens: Sequence[str], *, max_span: int = 3, keep: str = "capitalised") -> list[Span]:
    """Token n-grams up to `max_span` long; `capitalised` keeps those that start and end with a capitalised
    word (or a number) that is not a stopword and hold no punctuation-only token but inner '.', '&', '-'.
    In a sentence of CJK characters `capitalised` keeps character n-grams instead (cjk_candidates)."""
    if keep == "capitalised" and tokens and sum(map(is_cjk, tokens)) * 2 > len(tokens):
        return cjk_candidates(tokens, max_span=max_span)
    spans = []
    for start in range(len(tokens)):
        for end in range(start + 1, min(start + max_span, len(tokens)) + 1):
            if keep == "all" or _looks_like_a_name(tokens[start:end]):
                spans.append(Span(start, end, ""))
    return spans


def cjk_candidates(tokens: Sequence[str], *, max_span: int) -> list[Span]:
    """Runs of 2 to `max_span` CJK characters that neither start nor end with a function character, shortest
    first, at most MAX_CJK_CANDIDATES: scoring every n-gram of a long sentence would cost its square."""
    spans = []
    for length in range(2, max_span + 1):
        for start in range(len(tokens) - length + 1):
            run = tokens[start:start + length]
            if all(map(_cjk_letter, run)) and run[0] not in CJK_FUNCTION_CHARACTERS \
                    and run[-1] not in CJK_FUNCTION_CHARACTERS:
                spans.append(Span(start, start + length, ""))
    return sorted(spans[:MAX_CJK_CANDIDATES], key=lambda span: (span.start, span.end))


def _cjk_letter(token: str) -> bool:
    return is_cjk(token) and token.isalpha()  # not CJK punctuation


def _capitalised(token: str) -> bool:
    return (token[0].isupper() or token[0].isdigit()) and token.lower() not in STOPWORDS


def _looks_like_a_name(words: Sequence[str]) -> bool:
    if not (_capitalised(words[0]) and _capitalised(words[-1])):
        return False
    return all(any(character.isalnum() for character in word) or word in (".", "&", "-") for word in words[1:-1])


def span_fields(tokens: Sequence[str], span: Span) -> dict:
    """The fields a template reads: the sentence and the span, as text."""
    return {"sentence": join_tokens(tokens), "span": join_tokens(tokens[span.start:span.end])}


def candidate_inputs(examples: Sequence[dict], *, max_span: int = 3, keep: str = "capitalised") -> list[dict]:
    """What the template renders for each candidate span of the examples, with an id and the gold answer."""
    inputs = []
    for example in examples:
        gold = {(span.start, span.end): span.type for span in spans_of(example.get("tags") or [])}
        for span in candidate_spans(example["tokens"], max_span=max_span, keep=keep):
            inputs.append({"id": f"{example['id']}:{span.start}-{span.end}",
                           "label": gold.get((span.start, span.end), NOT_AN_ENTITY) if example.get("tags") else None,
                           **span_fields(example["tokens"], span)})
    return inputs


def candidate_prompts(template: Template, sentences: Sequence[Sequence[str]], *, max_span: int,
                      keep: str) -> tuple[list[Candidate], list[Prompt]]:
    candidates, prompts = [], []
    for index, tokens in enumerate(sentences):
        for span in candidate_spans(tokens, max_span=max_span, keep=keep):
            candidates.append(Candidate(index, span))
            prompts.append(template.render(span_fields(tokens, span)))
    return candidates, prompts


def gold_answers(candidates: Sequence[Candidate], tags: Sequence[Sequence[str]], answers: Sequence[str]) -> list[int]:
    """The index in `answers` of each candidate's gold answer: its entity type, or 'not an entity'."""
    gold = [{(span.start, span.end): span.type for span in spans_of(row)} for row in tags]
    return [answers.index(gold[candidate.sentence].get((candidate.span.start, candidate.span.end), NOT_AN_ENTITY))
            for candidate in candidates]


def decode(candidates: Sequence[Candidate], logprobs: torch.Tensor, answers: Sequence[str],
           lengths: Sequence[int]) -> list[list[tuple[Span, float]]]:
    """Per sentence: the typed spans chosen greedily by probability, never overlapping, in token order."""
    probabilities = logprobs.exp()
    outside = answers.index(NOT_AN_ENTITY)
    ranked: list[list[tuple[float, Span]]] = [[] for _ in lengths]
    for candidate, row in zip(candidates, probabilities.tolist()):
        best = max(range(len(answers)), key=row.__getitem__)
        if best != outside:
            span = Span(candidate.span.start, candidate.span.end, answers[best])
            ranked[candidate.sentence].append((row[best], span))
    chosen: list[list[tuple[Span, float]]] = []
    for options, length in zip(ranked, lengths):
        taken = [False] * length
        kept = []
        # Highest probability first; ties go to the longer, then the earlier span.
        for score, span in sorted(options, key=lambda item: (-item[0], item[1].start - item[1].end, item[1].start)):
            if not any(taken[span.start:span.end]):
                taken[span.start:span.end] = [True] * (span.end - span.start)
                kept.append((span, score))
        chosen.append(sorted(kept, key=lambda item: item[0].start))
    return chosen


def recognise(scorer, template: Template, sentences: Sequence[Sequence[str]], answers: Sequence[str], *,
              max_span: int, keep: str, progress=None) -> list[list[tuple[Span, float]]]:
    """Typed spans with their probabilities for every sentence, through `scorer` (a LabelScorer)."""
    candidates, prompts = candidate_prompts(template, sentences, max_span=max_span, keep=keep)
    if not prompts:
        return [[] for _ in sentences]
    with torch.inference_mode():
        logprobs = score_all(scorer, prompts, len(answers), progress=progress)
    return decode(candidates, logprobs, answers, [len(tokens) for tokens in sentences])


def predicted_tags(spans: Sequence[Sequence[tuple[Span, float]]], sentences: Sequence[Sequence[str]]) -> list[list[str]]:
    return [tags_of([span for span, _ in row], len(tokens)) for row, tokens in zip(spans, sentences)]
