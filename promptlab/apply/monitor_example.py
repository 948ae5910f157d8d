"""An example stream for `monitor`: labelled stories given times over a span of days, plus a negative burst.

The times are assigned (uniformly at random, seeded), not real. The burst: `burst_size` stories of
one topic, each opened by a negative lead sentence (written here, in the corpus's lower-case style),
all on one day. Each row: `id`, `date` (ISO 8601), `text` (the story's first `words` words) and
`topic_gold` (the story's Reuters topic, for checking the classifier; `burst` for the injected ones).
"""
from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone

from promptlab.apply.windows import iso
from promptlab.errors import UserError

NEGATIVE_LEADS = (
    "prices collapse and losses mount as the market turns against producers",
    "shares plunge after heavy losses and a warning of worse to come",
    "the outlook darkens sharply as output falls and debts rise",
    "traders fear a crisis as supplies pile up and prices slump",
    "the company cuts jobs and suspends its dividend after a severe loss",
    "analysts warn of default as revenues fall and costs soar",
)


def example_stream(stories: list[dict], *, days: int, start: str, words: int, burst_topic: str, burst_day: int,
                   burst_size: int, seed: int) -> list[dict]:
    """The stream's rows in time order; `stories` are rows with id, text and label."""
    try:
        first = datetime.combine(date.fromisoformat(start), datetime.min.time(), timezone.utc)
    except ValueError:
        raise UserError(f"--start '{start}' is not an ISO 8601 date", fix="write e.g. --start 2026-01-01") from None
    if burst_day > days:
        raise UserError(f"--burst-day {burst_day} is after the last day ({days})", fix=f"pass --burst-day 1..{days}")
    topic_stories = [story for story in stories if story["label"] == burst_topic]
    if not topic_stories:
        raise UserError(f"no story has topic '{burst_topic}'",
                        fix="choose one of: " + ", ".join(sorted({story["label"] for story in stories})))
    generator = random.Random(seed)
    span = days * 86400

    def lead(text: str) -> str:
        return " ".join(text.split()[:words])

    rows = [{"id": story["id"], "date": iso(first + timedelta(seconds=generator.randrange(span))),
             "text": lead(story["text"]), "topic_gold": story["label"]} for story in stories]
    burst_start = first + timedelta(days=burst_day - 1)
    for number in range(burst_size):
        story = generator.choice(topic_stories)
        rows.append({"id": f"burst-{number + 1:04d}", "date": iso(burst_start + timedelta(
            seconds=generator.randrange(86400))), "text": lead(f"{generator.choice(NEGATIVE_LEADS)} {story['text']}"),
            "topic_gold": "burst"})
    return sorted(rows, key=lambda row: (row["date"], row["id"]))
