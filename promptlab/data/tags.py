"""Tag schemes and spans.

Every scheme is read into IOB2 (B- starts an entity, I- continues it), the scheme seqeval's strict
mode and all of promptlab's entity code use:
- IOB1: I- starts an entity unless it continues one of the same type; B- only separates two
  adjacent entities of one type.
- BIOES: S- is a one-token entity (B-), E- its last token (I-).
- BMES (Chinese NER corpora such as MSRA, one character a token): BIOES with M- for I-.
An I- (M-, E-) that continues nothing under IOB2, BIOES or BMES is a slip the CoNLL files of the world often make:
it is repaired to B- (as conlleval does) and reported, not refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

OUTSIDE = "O"
PREFIXES = {"IOB2": ("B", "I"), "IOB1": ("B", "I"), "BIOES": ("B", "I", "E", "S"), "BMES": ("B", "M", "E", "S")}
_INSIDE = ("I", "M", "E")  # continue the entity before them
_OPEN = ("B", "I", "M")  # leave the entity open for the next tag


@dataclass(frozen=True)
class Span:
    start: int  # first token
    end: int  # one past the last token
    type: str


class TagError(ValueError):
    """A tag that the scheme or the task does not allow; `position` is its index in the sequence."""

    def __init__(self, position: int, message: str, fix: str):
        super().__init__(message)
        self.position, self.message, self.fix = position, message, fix


def split_tag(tag: str, scheme: str, types: Sequence[str], position: int = 0) -> tuple[str, str | None]:
    """('B', 'PER') for 'B-PER', ('O', None) for 'O'; a TagError for anything the scheme or task rejects."""
    if tag == OUTSIDE:
        return OUTSIDE, None
    prefix, dash, entity_type = tag.partition("-")
    if not dash or prefix not in PREFIXES[scheme] or not entity_type:
        allowed = ", ".join(f"{p}-TYPE" for p in PREFIXES[scheme])
        raise TagError(position, f"tag '{tag}' is not a {scheme} tag",
                       f"write O or one of {allowed}, or set  scheme:  in the task (IOB2, IOB1, BIOES, BMES)")
    if entity_type not in types:
        raise TagError(position, f"tag '{tag}': entity type '{entity_type}' is not a label of the task",
                       f"add '{entity_type}' to the task's labels ({', '.join(types)})")
    return prefix, entity_type


def to_iob2(tags: Sequence[str], scheme: str, types: Sequence[str]) -> tuple[list[str], list[int]]:
    """The tags in IOB2, and the positions of I- tags that began an entity and were repaired to B-."""
    converted: list[str] = []
    repaired: list[int] = []
    previous_type = None
    for position, tag in enumerate(tags):
        prefix, entity_type = split_tag(tag, scheme, types, position)
        if prefix == OUTSIDE:
            converted.append(OUTSIDE)
        else:
            continues = prefix in _INSIDE and previous_type == entity_type
            if prefix in _INSIDE and not continues and scheme != "IOB1":
                repaired.append(position)
            converted.append(f"{'I' if continues else 'B'}-{entity_type}")
        # BIOES and BMES close an entity at E- and S-: what follows starts a new one.
        previous_type = entity_type if prefix in _OPEN else None
    return converted, repaired


def spans_of(tags: Sequence[str]) -> list[Span]:
    """The entities of an IOB2 tag sequence, in order."""
    spans: list[Span] = []
    for position, tag in enumerate(tags):
        if tag.startswith("B-"):
            spans.append(Span(position, position + 1, tag[2:]))
        elif tag.startswith("I-") and spans and spans[-1].end == position and spans[-1].type == tag[2:]:
            spans[-1] = Span(spans[-1].start, position + 1, spans[-1].type)
    return spans


def tags_of(spans: Sequence[Span], length: int) -> list[str]:
    """The IOB2 tags of `length` tokens holding non-overlapping `spans`."""
    tags = [OUTSIDE] * length
    for span in spans:
        tags[span.start] = f"B-{span.type}"
        for position in range(span.start + 1, span.end):
            tags[position] = f"I-{span.type}"
    return tags
