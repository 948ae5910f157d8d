"""Alert rules: a small language for the command line, and the alerts a labelled stream raises.

    sentiment=negative by=topic share>0.4 z>3 min=20

Terms, separated by spaces, in any order:
- `CLASSIFIER=LABEL` (exactly one): the label watched, e.g. `sentiment=negative` or `orgs=opec`;
- `by=A[,B]`: watch each value of these classifiers apart (left out: the whole stream);
- `share>X` or `share>=X`: the label's share of the group's documents in the window is above X;
- `z>X` or `z>=X`: that share is X standard errors above its baseline, the pooled share over the
  previous `baseline=N` windows (default 7; empty windows count, with no documents). The standard
  error is the binomial one of the window's documents around the baseline (smoothed by one document
  each way, so a baseline of 0 still gives a finite z); a window without history never passes `z`;
- `min=N`: at least N documents with the label (default 1).

A window alerts when every condition given holds.
"""
from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from itertools import product

from promptlab.apply.windows import Labelled, Windowing, iso
from promptlab.errors import UserError, did_you_mean

DEFAULT_BASELINE = 7
DIGITS = 6
COMPARISON = re.compile(r"(share|z)(>=|>)(.+)")
SETTING = re.compile(r"(by|min|baseline)=(.*)")
RULE_FIX = "write e.g. --alert \"sentiment=negative by=topic share>0.4 z>3 min=20\" (see docs/monitor.md)"


@dataclass(frozen=True)
class Threshold:
    value: float
    inclusive: bool

    def passes(self, measured: float | None) -> bool:
        if measured is None:
            return False
        return measured >= self.value if self.inclusive else measured > self.value


@dataclass(frozen=True)
class Rule:
    text: str
    classifier: str
    label: str
    by: tuple[str, ...] = ()
    share: Threshold | None = None
    z: Threshold | None = None
    min_count: int = 1
    baseline: int = DEFAULT_BASELINE


def parse_rule(text: str, labels: dict[str, list[str] | None]) -> Rule:
    """One --alert; `labels` maps each classifier to its label set (None: an entity classifier's open set)."""
    def fail(what: str, fix: str = RULE_FIX) -> UserError:
        return UserError(f"--alert '{text}': {what}", fix=fix)

    watched, settings = None, {}
    for term in text.split():
        if comparison := COMPARISON.fullmatch(term):
            name, operator, value = comparison.groups()
            number = _number(value, lambda: fail(f"'{value}' in '{term}' is not a number"))
            if name == "share" and not 0 <= number < 1:
                raise fail(f"a share is between 0 and 1, not {number}", fix="write e.g. share>0.4")
            _set_once(settings, name, Threshold(number, operator == ">="), fail)
        elif setting := SETTING.fullmatch(term):
            name, value = setting.groups()
            if name == "by":
                _set_once(settings, name, tuple(_known(part, labels, fail) for part in value.split(",")), fail)
            else:
                if not value.isdigit() or int(value) < 1:
                    raise fail(f"{name}= takes a positive whole number, not '{value}'")
                _set_once(settings, name, int(value), fail)
        elif "=" in term:
            if watched is not None:
                raise fail(f"it watches two labels ('{watched[0]}={watched[1]}' and '{term}')",
                           fix="write one rule per label: --alert can be given several times")
            name, label = term.split("=", 1)
            _known(name, labels, fail)
            if labels[name] is not None and label not in labels[name]:
                raise fail(f"classifier '{name}' has no label '{label}'", fix=did_you_mean(label, labels[name]))
            watched = (name, label)
        else:
            raise fail(f"'{term}' is not a term of the rule language")
    if watched is None:
        raise fail("it names no label to watch", fix="start it with CLASSIFIER=LABEL, e.g. sentiment=negative")
    if watched[0] in settings.get("by", ()):
        raise fail(f"it groups by '{watched[0]}', the classifier it watches",
                   fix="group by the other classifiers, e.g. by=topic")
    return Rule(text=" ".join(text.split()), classifier=watched[0], label=watched[1], by=settings.get("by", ()),
                share=settings.get("share"), z=settings.get("z"), min_count=settings.get("min", 1),
                baseline=settings.get("baseline", DEFAULT_BASELINE))


def _number(value: str, fail) -> float:
    try:
        number = float(value)
    except ValueError:
        raise fail() from None
    if not math.isfinite(number):
        raise fail()
    return number


def _known(name: str, labels: dict, fail) -> str:
    if name not in labels:
        raise fail(f"no classifier is named '{name}'", fix=f"{did_you_mean(name, labels)} (the --classifier names)")
    return name


def _set_once(settings: dict, name: str, value, fail) -> None:
    if name in settings:
        raise fail(f"'{name}' is given twice")
    settings[name] = value


# ---------------------------------------------------------------- evaluation

def _groups(document: Labelled, by: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The groups a document belongs to: one per combination of its values of the `by` classifiers."""
    return list(product(*(document.values.get(name, ()) for name in by)))


def z_score(count: int, total: int, baseline_count: int, baseline_total: int) -> float | None:
    """How many binomial standard errors the window's share lies above the baseline's."""
    if baseline_total == 0:
        return None
    baseline = baseline_count / baseline_total
    smoothed = (baseline_count + 1) / (baseline_total + 2)
    return (count / total - baseline) / math.sqrt(smoothed * (1 - smoothed) / total)


def evaluate(rule: Rule, documents: list[Labelled], windowing: Windowing,
             closed_before: datetime | None = None) -> list[dict]:
    """The alerts `rule` raises over `documents`, window by window in time order (then by group).

    `closed_before`: only windows ending by then are judged (a stream still running); None: all.
    """
    totals, counts = Counter(), Counter()
    members: dict[tuple, list[Labelled]] = defaultdict(list)
    for document in documents:
        start = windowing.start_of(document.time)
        watched = rule.label in document.values.get(rule.classifier, ())
        for group in _groups(document, rule.by):
            totals[start, group] += 1
            if watched:
                counts[start, group] += 1
                members[start, group].append(document)
    if not totals:
        return []
    starts = windowing.between(min(start for start, _ in totals), max(start for start, _ in totals))
    alerts = []
    for index, start in enumerate(starts):
        end = windowing.end_of(start)
        if closed_before is not None and end > closed_before:
            break
        previous = starts[max(0, index - rule.baseline):index]
        for group in sorted({group for (when, group) in totals if when == start}):
            count, total = counts[start, group], totals[start, group]
            baseline_count = sum(counts[when, group] for when in previous)
            baseline_total = sum(totals[when, group] for when in previous)
            share, z = count / total, z_score(count, total, baseline_count, baseline_total)
            if count < rule.min_count or (rule.share is not None and not rule.share.passes(share)) or (
                    rule.z is not None and not rule.z.passes(z)):
                continue
            alerts.append({
                "window_start": iso(start), "window_end": iso(end), "rule": rule.text,
                "label": f"{rule.classifier}={rule.label}", "group": dict(zip(rule.by, group)),
                "count": count, "share": round(share, DIGITS),
                "baseline": round(baseline_count / baseline_total, DIGITS) if baseline_total else None,
                "z": None if z is None else round(z, DIGITS),
                "documents": [document.id for document in _strongest_first(members[start, group], rule)]})
    return alerts


def _strongest_first(documents: list[Labelled], rule: Rule) -> list[Labelled]:
    """The documents behind an alert, the most confident for the watched label first (stable otherwise)."""
    return sorted(documents, key=lambda document: -document.probabilities.get(rule.classifier, {}).get(rule.label, 0))


def evaluate_all(rules: list[Rule], documents: list[Labelled], windowing: Windowing,
                 closed_before: datetime | None = None) -> list[dict]:
    return [alert for rule in rules for alert in evaluate(rule, documents, windowing, closed_before)]
