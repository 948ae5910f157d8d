"""`monitor`'s report: report.html (self-contained: the charts inline as SVG), report.md with the same
charts as PNG (volume.png, share.png), all written atomically.

The charts follow the first --alert rule: volume per window split by its first `by=` classifier,
and the share of its label per window in each of that classifier's groups, alerts marked. Without
rules: volume by the first classifier and the share of the last other text classifier's first label.
"""
from __future__ import annotations

import html
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from promptlab.apply.alerts import Rule
from promptlab.apply.windows import Labelled, WindowCounts, group_name, iso
from promptlab.runtime.outputs import write_atomic

PANELS = 8  # groups drawn (the busiest, and every group with an alert)
TOP_DOCUMENTS = 5  # shown per alert
SNIPPET = 240  # characters of a document's text shown
ALERT_COLOUR = "#d62728"


@dataclass(frozen=True)
class Focus:
    """What the charts show: volume split by `group_by`, the share of `classifier`=`label` per group."""

    group_by: str | None  # None: no split (the whole stream)
    classifier: str | None
    label: str | None


def focus_of(rules: list[Rule], counts: WindowCounts) -> Focus:
    if rules:
        rule = rules[0]
        return Focus(rule.by[0] if rule.by else None, rule.classifier, rule.label)
    group_by = counts.classifiers[0]
    others = [name for name in counts.classifiers if name != group_by and name in counts.labels]
    return Focus(group_by, others[-1] if others else None, counts.labels[others[-1]][0] if others else None)


def _groups(counts: WindowCounts, focus: Focus, alerts: list[dict]) -> list[str]:
    """The groups drawn: the busiest values of `group_by` plus those with alerts, as group names."""
    if focus.group_by is None:
        return [""]
    volume = Counter()
    for (start, group), total in counts.totals.items():
        if group.startswith(f"{focus.group_by}="):
            volume[group] += total
    alerted = {group_name(focus.group_by, alert["group"][focus.group_by]) for alert in alerts
               if focus.group_by in alert["group"]}
    busiest = [group for group, _ in volume.most_common(PANELS)]
    return busiest + sorted(alerted - set(busiest))


def _figures(counts: WindowCounts, focus: Focus, alerts: list[dict]):
    import matplotlib
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.dates as dates
    import matplotlib.pyplot as plt

    def date_axis(axis) -> None:
        axis.set_xlim(windows[0], counts.windowing.end_of(windows[-1]))  # never empty: one window has a width
        locator = dates.AutoDateLocator(maxticks=6)
        axis.xaxis.set_major_locator(locator)
        axis.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator))

    starts = counts.starts()
    if not starts:
        return {}
    windows = counts.windowing.between(starts[0], starts[-1])
    groups = _groups(counts, focus, alerts)
    alert_windows = {alert["window_start"] for alert in alerts}
    figures = {}

    figure, axis = plt.subplots(figsize=(10, 3.6))
    bottom = [0] * len(windows)
    for group in groups:
        heights = [counts.totals[start, group] for start in windows]
        axis.bar(windows, heights, width=counts.windowing.seconds / 86400 * 0.9, bottom=bottom, align="edge",
                 label=group.split("=", 1)[-1] or "documents")
        bottom = [b + h for b, h in zip(bottom, heights)]
    for start in windows:
        if iso(start) in alert_windows:
            axis.axvspan(start, counts.windowing.end_of(start), color=ALERT_COLOUR, alpha=0.15, linewidth=0)
    axis.set_title(f"Documents per window{f' by {focus.group_by}' if focus.group_by else ''} "
                   "(red band: alert)")
    axis.set_ylim(0, max(bottom) * 1.25)  # room for the legend above the bars
    axis.legend(fontsize=7, ncol=4, loc="upper left")
    date_axis(axis)
    figures["volume"] = figure

    if focus.classifier is not None:
        columns = min(4, len(groups))
        rows = -(-len(groups) // columns)
        figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows), squeeze=False,
                                    sharex=True, sharey=True)
        for axis, group in zip(axes.flat, groups):
            shares = [counts.counts[start, focus.classifier, focus.label, group] / counts.totals[start, group]
                      if counts.totals[start, group] else float("nan") for start in windows]
            axis.plot(windows, shares, marker=".", linewidth=1)
            marked = [(start, share) for start, share in zip(windows, shares) if any(
                alert["window_start"] == iso(start) and _in_group(alert, group) for alert in alerts)]
            if marked:
                axis.scatter(*zip(*marked), color=ALERT_COLOUR, zorder=3, s=40, label="alert")
            axis.set_title(group or "all documents", fontsize=9)
            axis.set_ylim(0, 1)
            date_axis(axis)
        for axis in list(axes.flat)[len(groups):]:
            axis.set_visible(False)
        figure.suptitle(f"Share of {focus.classifier}={focus.label} per window (red: alerts)")
        figure.tight_layout()
        figures["share"] = figure
    return figures


def _in_group(alert: dict, group: str) -> bool:
    if not group:
        return not alert["group"]
    name, value = group.split("=", 1)
    return alert["group"].get(name) == value


def _rendered(figure, form: str) -> bytes:
    import matplotlib
    import matplotlib.pyplot as plt
    buffer = io.BytesIO()
    metadata = {"Date": None} if form == "svg" else None
    with matplotlib.rc_context({"svg.hashsalt": "promptlab"}):  # no date, fixed ids: the same charts, the same bytes
        figure.savefig(buffer, format=form, dpi=100, bbox_inches="tight", metadata=metadata)
    if form == "png":
        plt.close(figure)
    return buffer.getvalue()


def _texts(folder: Path, ids: set[str], text_field: str) -> dict[str, str]:
    """The text of the documents behind the alerts, read back from labelled.jsonl."""
    texts = {}
    path = folder / "labelled.jsonl"
    if not ids or not path.exists():
        return texts
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break
            row = json.loads(line)
            if row["id"] in ids:
                document = row["document"]
                text = document.get(text_field) or next((v for v in document.values() if isinstance(v, str)), "")
                texts[row["id"]] = str(text)[:SNIPPET]
    return texts


def write_report(folder: Path, documents: list[Labelled], counts: WindowCounts, alerts: list[dict],
                 rules: list[Rule], info: dict) -> None:
    """report.html, report.md, volume.png and share.png in `folder`."""
    focus = focus_of(rules, counts)
    figures = _figures(counts, focus, alerts)
    svgs = {name: _rendered(figure, "svg").decode() for name, figure in figures.items()}
    for name, figure in figures.items():
        write_atomic(folder / f"{name}.png", _rendered(figure, "png"))
    probabilities = {document.id: document.probabilities for document in documents}
    shown = {identifier for alert in alerts for identifier in alert["documents"][:TOP_DOCUMENTS]}
    texts = _texts(folder, shown, info.get("text_field", "text"))
    summary = _summary(counts, alerts, info)
    write_atomic(folder / "report.html", _html(summary, svgs, alerts, texts, probabilities).encode())
    write_atomic(folder / "report.md", _markdown(summary, list(figures), alerts, texts).encode())


def _summary(counts: WindowCounts, alerts: list[dict], info: dict) -> list[tuple[str, str]]:
    starts = counts.starts()
    skipped = info.get("skipped") or {}
    return [("input", str(info.get("input", ""))),
            ("classifiers", "; ".join(info.get("classifiers", []))),
            ("documents", str(counts.documents)),
            ("windows", f"{counts.windowing.text}, {iso(starts[0])} to {iso(counts.windowing.end_of(starts[-1]))}"
             if starts else "none"),
            ("rules", "; ".join(info.get("rules", [])) or "none"),
            ("alerts", str(len(alerts))),
            ("rows skipped", ", ".join(f"{count} {reason}" for reason, count in sorted(skipped.items())) or "none"),
            ("ids seen before", str(info.get("duplicates", 0)))]


STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;
vertical-align:top;font-size:14px}th{background:#f4f4f4}.chart svg{max-width:100%;height:auto}
.alert{color:#d62728;font-weight:600}.doc{font-size:13px;color:#444}"""


def _html(summary, svgs: dict[str, str], alerts: list[dict], texts: dict[str, str], probabilities: dict) -> str:
    def escape(value) -> str:
        return html.escape(str(value))

    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>promptlab monitor</title>",
             f"<style>{STYLE}</style></head><body><h1>promptlab monitor</h1><table>"]
    parts += [f"<tr><th>{escape(key)}</th><td>{escape(value)}</td></tr>" for key, value in summary]
    parts.append("</table>")
    for name, svg in svgs.items():
        parts.append(f"<h2>{'Volume' if name == 'volume' else 'Share'}</h2>"
                     f"<div class='chart' id='{name}'>{svg[svg.find('<svg'):]}</div>")
    parts.append(f"<h2>Alerts ({len(alerts)})</h2>")
    if alerts:
        parts.append("<table><tr><th>window</th><th>label</th><th>group</th><th>count</th><th>share</th>"
                     "<th>baseline</th><th>z</th><th>top documents</th></tr>")
        for alert in alerts:
            classifier, label = alert["label"].split("=", 1)
            documents = "".join(
                f"<div class='doc'><b>{escape(identifier)}</b> "
                f"({probabilities.get(identifier, {}).get(classifier, {}).get(label, '')}): "
                f"{escape(texts.get(identifier, ''))}</div>" for identifier in alert["documents"][:TOP_DOCUMENTS])
            parts.append(f"<tr><td>{escape(alert['window_start'])}</td><td class='alert'>{escape(alert['label'])}</td>"
                         f"<td>{escape(_group_text(alert))}</td><td>{alert['count']}</td><td>{alert['share']}</td>"
                         f"<td>{alert['baseline']}</td><td>{alert['z']}</td><td>{documents}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "".join(parts)


def _group_text(alert: dict) -> str:
    return ", ".join(f"{name}={value}" for name, value in alert["group"].items()) or "all"


def _markdown(summary, charts: list[str], alerts: list[dict], texts: dict[str, str]) -> str:
    lines = ["# promptlab monitor", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in summary]
    lines += [""] + [f"![{name}]({name}.png)\n" for name in charts]
    lines += [f"## Alerts ({len(alerts)})", ""]
    if alerts:
        lines += ["| window | label | group | count | share | baseline | z | top documents |",
                  "|---|---|---|---|---|---|---|---|"]
        for alert in alerts:
            documents = "<br>".join(f"**{identifier}** {texts.get(identifier, '')[:120]}".replace("|", "\\|")
                                    for identifier in alert["documents"][:TOP_DOCUMENTS])
            lines.append(f"| {alert['window_start']} | {alert['label']} | {_group_text(alert)} | {alert['count']} | "
                         f"{alert['share']} | {alert['baseline']} | {alert['z']} | {documents} |")
    return "\n".join(lines) + "\n"
