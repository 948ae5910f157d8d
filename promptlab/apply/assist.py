"""The customer-service assistant: each message answered from a template, the knowledge base, or by a person.

For each message the intent router (any text classifier: a trained artefact or a zero-shot setup)
gives its top intent and that intent's probability. Then:

    probability >= intent threshold, intent listed under handoff    -> handoff
    probability >= intent threshold, intent has an answer           -> template: the answer rendered
    otherwise (low confidence, a `retrieve` intent, no answer)      -> search the knowledge base:
        best passage's similarity >= retrieval threshold            -> retrieval: the passage is the answer
        else                                                        -> handoff

Every reply is {path, intent, probability, answer, passages, reason}: `answer` is absent on handoff,
`passages` (id, score, similarity, title, text, link; best first) empty on the template path, and
`reason` says in words which rule applied, with the thresholds it compared against.
The default thresholds were chosen on Banking77's dev split (benchmarks/assistant.py, docs/results.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from promptlab.apply.knowledge_index import Hit, KnowledgeIndex
from promptlab.catalog.answers import Answers
from promptlab.errors import UserError

DEFAULT_INTENT_THRESHOLD = 0.6
DEFAULT_RETRIEVAL_THRESHOLD = 0.6
DEFAULT_TOP_PASSAGES = 3
PROBABILITY_DIGITS = 4


def check_thresholds(intent: float, retrieval: float) -> None:
    if not 0 <= intent <= 1:
        raise UserError(f"--intent-threshold must be a probability between 0 and 1, got {intent}")
    if not -1 <= retrieval <= 1:
        raise UserError(f"--retrieval-threshold is a cosine similarity between -1 and 1, got {retrieval}")


@dataclass
class Assistant:
    answers: Answers
    index: KnowledgeIndex
    intent_threshold: float = DEFAULT_INTENT_THRESHOLD
    retrieval_threshold: float = DEFAULT_RETRIEVAL_THRESHOLD
    top_passages: int = DEFAULT_TOP_PASSAGES

    def describe(self) -> dict:
        return {"answers": self.answers.name, "answers_hash": self.answers.content_hash,
                "intent_threshold": self.intent_threshold, "retrieval_threshold": self.retrieval_threshold,
                "top_passages": self.top_passages, "knowledge": self.index.describe()}

    def reply(self, rows: Sequence[dict], probabilities: Sequence[dict[str, float]], *,
              where: Sequence[str] | None = None) -> list[dict]:
        """One reply per row, given the router's label probabilities for it; `where` names rows in errors."""
        where = where or [f" {position + 1}" for position in range(len(rows))]
        replies, searching = [], []
        for position, (row, distribution) in enumerate(zip(rows, probabilities)):
            intent = max(distribution, key=distribution.__getitem__)
            probability = distribution[intent]
            reply = {"path": None, "intent": intent, "probability": round(probability, PROBABILITY_DIGITS),
                     "passages": []}
            confident = probability >= self.intent_threshold
            compared = f"intent '{intent}' at {probability:.2f} {'>=' if confident else '<'} " \
                       f"intent threshold {self.intent_threshold:g}"
            path = self.answers.path_for(intent) if confident else "retrieval"
            if path == "handoff":
                reply.update(path="handoff", reason=f"{compared}; this intent always goes to a person")
            elif path == "template":
                reply.update(path="template", answer=self.answers.render(intent, row, where=where[position]),
                             reason=f"{compared}: its answer template")
            else:
                why = "this intent is answered from the knowledge base" if confident else "searched the knowledge base"
                reply["reason"] = f"{compared}; {why}"
                searching.append(position)
            replies.append(reply)
        if searching:
            found = self.index.search([str(rows[position].get("text", "")) for position in searching],
                                      k=self.top_passages)
            for position, hits in zip(searching, found):
                self._retrieved(replies[position], hits)
        return [_ordered(reply) for reply in replies]

    def _retrieved(self, reply: dict, hits: list[Hit]) -> None:
        reply["passages"] = [hit.as_dict() for hit in hits]
        best = max((hit.similarity for hit in hits), default=float("-inf"))
        if hits and best >= self.retrieval_threshold:
            reply.update(path="retrieval", answer=compose(hits[0]),
                         reason=reply["reason"] + f"; best passage '{hits[0].passage.id}' at similarity {best:.2f} "
                                                  f">= retrieval threshold {self.retrieval_threshold:g}")
        else:
            reply.update(path="handoff", reason=reply["reason"] + f"; no passage is close enough (best similarity "
                                                                  f"{best:.2f} < retrieval threshold "
                                                                  f"{self.retrieval_threshold:g})")


def compose(hit: Hit) -> str:
    """The extractive reply: the passage under its title, and its link when it has one."""
    passage = hit.passage
    parts = [passage.title, passage.text] if passage.title else [passage.text]
    if passage.link:
        parts.append(f"More: {passage.link}")
    return "\n".join(parts)


def _ordered(reply: dict) -> dict:
    keys = ("path", "intent", "probability", "answer", "passages", "reason")
    return {key: reply[key] for key in keys if key in reply}
