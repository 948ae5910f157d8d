"""Raw text for entity tasks: tokens with character offsets, and predicted spans back onto the text.

Tokenised as CoNLL-2003 is: words (with inner hyphens, apostrophes and dots: "AL-AIN", "O'Neill",
"1996-12-06"), dotted abbreviations ("U.S."), the possessive "'s" apart, and every other non-space
character on its own. Chinese and Japanese characters are tokens of their own, as in MSRA: text
without spaces has no words to find, and spans come back in character offsets either way. A text
is tagged as one sequence; token models see up to their `max_tokens` sub-tokens of it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

from promptlab.data.tags import Span

CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # kana and CJK ideographs
_WORD = rf"[^\W{CJK}]"  # a word character that is not CJK
TOKEN = re.compile(rf"[{CJK}]|(?:[^\W\d_]\.){{2,}}|['’][sS]\b|{_WORD}+(?:[-.]{_WORD}+|['’](?![sS]\b){_WORD}+)*|[^\w\s]")
_JOINS_WITHOUT_SPACE = re.compile(rf"[{CJK}\u3000-\u303f\uff00-\uffef]")  # and CJK and full-width punctuation

# What predicts spans for pre-tokenised sentences: per sentence, (span, score) pairs.
SpanPredictor = Callable[[Sequence[Sequence[str]]], list[list[tuple[Span, float]]]]


@dataclass(frozen=True)
class Token:
    text: str
    start: int  # character offset in the text
    end: int


def tokenize(text: str) -> list[Token]:
    return [Token(match.group(), match.start(), match.end()) for match in TOKEN.finditer(text)]


def is_cjk(token: str) -> bool:
    """A CJK character or CJK (full-width) punctuation: a token written without spaces around it."""
    return bool(_JOINS_WITHOUT_SPACE.fullmatch(token))


def join_tokens(tokens: Sequence[str]) -> str:
    """Tokens as text: a space between two tokens unless one of them is a CJK character."""
    return joined_with_offsets(tokens)[0]


def joined_with_offsets(tokens: Sequence[str]) -> tuple[str, list[int]]:
    """`join_tokens`'s text and each token's first character offset in it."""
    pieces, starts, length = [], [], 0
    for index, token in enumerate(tokens):
        if index and not (is_cjk(token) or is_cjk(tokens[index - 1])):
            pieces.append(" ")
            length += 1
        starts.append(length)
        pieces.append(token)
        length += len(token)
    return "".join(pieces), starts


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
