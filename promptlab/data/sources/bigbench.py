"""SNIPS intents and VitaminC claims, from the task files of the `bigbench` sdist (358 MB)."""
from __future__ import annotations

import json

from promptlab.data.sources.base import Files, Parsed, Source, SplitPlan, only_file


def _bigbench_examples(files: Files) -> list[dict]:
    return json.loads(only_file(files))["examples"]


def _gold(target_scores: dict[str, float]) -> str:
    return max(target_scores, key=target_scores.get)


UTTERANCE_PREFIX = "Utterance: "


def parse_snips(files: Files) -> Parsed:
    records = [(index, {"text": example["input"].removeprefix(UTTERANCE_PREFIX).strip(),
                        "label": _gold(example["target_scores"])})
               for index, example in enumerate(_bigbench_examples(files))]
    return Parsed(records, ["label = the BIG-bench intent name with the highest target score"])


CLAIM_SEPARATOR = "\nClaim: "


def parse_vitaminc(files: Files) -> Parsed:
    records = []
    for index, example in enumerate(_bigbench_examples(files)):
        evidence, claim = example["input"].split(CLAIM_SEPARATOR, 1)
        records.append((index, {"evidence": evidence.strip(), "claim": claim.strip(),
                                "label": _gold(example["target_scores"]).lower()}))
    return Parsed(records, ["evidence keeps its 'Wikipedia title: ' prefix; labels are BIG-bench's "
                            "True/False/Neither lowercased: true = the evidence supports the claim, "
                            "false = it refutes it, neither = not enough information"])


BIGBENCH_TASKS = "bigbench-1.0.0/bigbench/benchmark_tasks"
BIGBENCH_LICENCE = ("BIG-bench (Apache-2.0); the task data keeps the terms of its original data set. "
                    "Fetched into the local cache, never redistributed.")


SOURCES = [
    Source(
        name="snips", description="voice-assistant utterances by intent (SNIPS, via BIG-bench)",
        package="bigbench", version="1.0.0", archive_kind="sdist",
        member=f"{BIGBENCH_TASKS}/intent_recognition/task.json",
        labels=["add_to_playlist", "book_restaurant", "get_weather", "play_music",
                "search_screening_event", "search_creative_work", "rate_book"], fields=["text"],
        licence=BIGBENCH_LICENCE, parse=parse_snips, plan=SplitPlan(test=0.5),
        download_size="358 MB", via_pip=False),
    Source(
        name="vitaminc", description="claim vs Wikipedia evidence: true, false or neither (VitaminC, via BIG-bench)",
        package="bigbench", version="1.0.0", archive_kind="sdist",
        member=f"{BIGBENCH_TASKS}/vitaminc_fact_verification/task.json",
        labels=["true", "false", "neither"], fields=["evidence", "claim"],
        licence=BIGBENCH_LICENCE, parse=parse_vitaminc, plan=SplitPlan(test=2000, train=2000),
        download_size="358 MB", via_pip=False),
]
