"""A toy news stream for the monitor tests: four topics, mostly positive, a burst of negative 'tech' on one day.

Texts are TINY_WORDS only, so the tiny models' `head` artefacts (trained in the fixtures) tell topic
and tone apart: a head on the mean embedding of a 32-wide random model is a bag-of-words classifier.
"""
from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

TOPICS = ("sports", "business", "politics", "tech")
POSITIVE = ("great good excellent", "good fine fun", "love it great")
NEGATIVE = ("terrible awful bad", "bad boring awful", "hate it terrible")
FILLERS = ("the news is", "this story was really", "a review about it: very", "my", "you said")
START = datetime(2026, 3, 1, tzinfo=timezone.utc)
DAYS, PER_DAY, NEGATIVE_SHARE = 30, 100, 0.15
BURST_TOPIC, BURST_DAY, BURST_SIZE = "tech", 20, 60  # day 20 is 2026-03-20


def text(topic: str, tone: str, filler: str) -> str:
    return f"{topic} {filler} {tone}"


def _jsonl(rows) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def catalog_files() -> dict[str, str]:
    """Two tasks, news-topic and news-tone, with train rows in the stream's style and test rows in another."""
    def rows(label_of, fillers):
        return [{"text": text(topic, tone, filler), "label": label_of(topic, tone)}
                for topic in TOPICS for tone in POSITIVE + NEGATIVE for filler in fillers]

    def tone_of(topic, tone):
        return "negative" if tone in NEGATIVE else "positive"

    return {
        "tasks/news-topic.yaml": "labels: [sports, business, politics, tech]\n"
                                 "data: {train: data/topic.jsonl, test: data/topic-test.jsonl}\n",
        "templates/news-topic/t1.jinja": "{{ text }} topic: {{ mask }}",
        "verbalizers/news-topic/default.yaml": "labels: {sports: sports, business: business, politics: politics, "
                                               "tech: tech}\n",
        "tasks/news-tone.yaml": "labels: [negative, positive]\n"
                                "data: {train: data/tone.jsonl, test: data/tone-test.jsonl}\n",
        "templates/news-tone/t1.jinja": "{{ text }} it was {{ mask }}",
        "verbalizers/news-tone/default.yaml": "labels: {negative: bad, positive: good}\n",
        "tasks/data/topic.jsonl": _jsonl(rows(lambda topic, tone: topic, FILLERS)),
        "tasks/data/topic-test.jsonl": _jsonl(rows(lambda topic, tone: topic, ["overall it is"])),
        "tasks/data/tone.jsonl": _jsonl(rows(tone_of, FILLERS)),
        "tasks/data/tone-test.jsonl": _jsonl(rows(tone_of, ["overall it is"])),
    }


def stream(seed: int = 0) -> list[dict]:
    """DAYS × PER_DAY documents at random times (ISO 8601 or epoch seconds), then the burst, in time order."""
    generator = random.Random(seed)
    rows = []
    for day in range(DAYS):
        for number in range(PER_DAY):
            moment = START + timedelta(days=day, seconds=generator.randrange(86400))
            tone = generator.choice(NEGATIVE if generator.random() < NEGATIVE_SHARE else POSITIVE)
            stamp = moment.isoformat().replace("+00:00", "Z") if number % 2 else int(moment.timestamp())
            rows.append({"id": f"d{day:02d}-{number:03d}", "time": stamp,
                         "text": text(generator.choice(TOPICS), tone, generator.choice(FILLERS))})
    for number in range(BURST_SIZE):
        moment = START + timedelta(days=BURST_DAY - 1, seconds=generator.randrange(86400))
        rows.append({"id": f"burst-{number:03d}", "time": moment.isoformat(),
                     "text": text(BURST_TOPIC, generator.choice(NEGATIVE), generator.choice(FILLERS))})
    return sorted(rows, key=lambda row: _epoch(row["time"]))


def _epoch(stamp) -> float:
    return stamp if isinstance(stamp, int) else datetime.fromisoformat(stamp).timestamp()


BAD_ROWS = [{"id": "bad-time", "time": "yesterday", "text": "tech news"},
            {"id": "no-time", "text": "tech news"},
            {"time": "2026-03-02T10:00:00Z", "text": "tech news without an id"}]


def write_stream(path, rows) -> None:
    path.write_text(_jsonl(rows), encoding="utf-8")
