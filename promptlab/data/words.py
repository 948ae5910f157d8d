"""Raw text for entity tasks: tokens with character offsets, and predicted spans back onto the text.

Tokenised as CoNLL-2003 is: words (with inner hyphens, apostrophes and dots: "AL-AIN", "O'Neill",
"1996-12-06"), dotted abbreviations ("U.S."), the possessive "'s" apart, and every other non-space
character on its own. A text
is tagged as one sequence; token models see up to their `max_tokens` sub-tokens of it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

from promptlab.data.tags import Span

TOKEN = re.compile(r"(?:[^\W\d_]\.){2,}|['’][sS]\b|\w+(?:[-.]\w+|['’](?![sS]\b)\w+)*|[^\w\s]")

# What predicts spans for pre-tokenised sentences: per sentence, (span, score) pairs.
SpanPredictor = Callable[[Sequence[Sequence[str]]], list[list[tuple[Span, float]]]]


@dataclass(frozen=True)
class Token:
    text: str
    start: int  # character offset in the text
    end: int


def tokenize(text: str) -> list[Token]:
    return [Token(match.group(), match.start(), match.end()) for match in TOKEN.finditer(text)]


def entities_in_texts(predict: SpanPredictor, texts: Sequence[str]) -> list[list[dict]]:
    """Per text: its entities with character offsets `start`, `end` (exclusive), `type`, `text` and `score`."""
    tokenised = [tokenize(text) for text in texts]
    filled = [i for i, tokens in enumerate(tokenised) if tokens]
    predicted = dict(zip(filled, predict([[token.text for token in tokenised[i]] for i in filled]))) if filled else {}
    results = []
    for index, (text, tokens) in enumerate(zip(texts, tokenised)):
        rows = []
        for span, score in predicted.get(index, []):
            start, end = tokens[span.start].start, tokens[span.end - 1].end
            rows.append({"start": start, "end": end, "type": span.type, "text": text[start:end],
                         "score": round(score, 6)})
        results.append(rows)
    return results
