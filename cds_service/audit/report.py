"""report.html: a static page (inline SVG plots from matplotlib, inline CSS, no scripts, no network).

Read from patients.parquet (only the columns it plots), so the report costs the same memory as a few
columns of the export, however the rows were produced. It shows counts, dates, scores and codes, and the
fixture labels of marked patients: never a patient id, a name or record text.
"""

from __future__ import annotations

import html
import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import pyarrow.parquet as pq
from matplotlib.figure import Figure

THRESHOLD: Final = 20
BATCH_ROWS: Final = 10_000
INDICATOR_COLOURS: Final = {"warning": "#d9822b", "info": "#2b6cb0"}
CLASSIFICATIONS: Final = ("meets", "excluded", "indeterminate", "does-not-meet")
REPORT_COLUMNS: Final = (
    "index_date",
    "presumed",
    "indicator",
    "total",
    "classification",
    "igg4_measured",
    "exclusions_present",
    "exclusions_unresolved",
    "order_after_index",
    "order_actions",
    "order_indicator",
    "order_igg4_measured",
    "days_to_resection",
    "days_to_chemotherapy",
    "fixture",
)


@dataclass
class Summary:
    """The figures of the report, computed from the rows."""

    patients: int = 0
    presumed: int = 0
    cards: Counter[str] = field(default_factory=Counter)
    order_cards: Counter[str] = field(default_factory=Counter)
    per_month: dict[str, Counter[str]] = field(default_factory=dict)
    scores: Counter[int] = field(default_factory=Counter)
    classifications: Counter[str] = field(default_factory=Counter)
    exclusions_present: Counter[str] = field(default_factory=Counter)
    exclusions_unresolved: Counter[str] = field(default_factory=Counter)
    igg4: Counter[str] = field(default_factory=Counter)
    acted_without_igg4: int = 0
    acted: int = 0
    to_resection: Counter[int] = field(default_factory=Counter)
    to_chemotherapy: Counter[int] = field(default_factory=Counter)
    fixtures: list[dict[str, Any]] = field(default_factory=list)


def summarise(parquet: Path) -> Summary:
    """The report's figures from patients.parquet, read in batches: counters only, memory stays flat."""
    summary = Summary()
    for batch in pq.ParquetFile(parquet).iter_batches(batch_size=BATCH_ROWS, columns=list(REPORT_COLUMNS)):
        summary.patients += batch.num_rows
        for row in batch.to_pylist():
            _add(summary, row)
    return summary


def _add(summary: Summary, row: dict[str, Any]) -> None:
    indicator = row["indicator"]
    if row["fixture"]:
        summary.fixtures.append(row)
    if indicator != "none":
        summary.cards[indicator] += 1
        when: date | None = row["index_date"]
        if when is not None:
            summary.per_month.setdefault(when.strftime("%Y-%m"), Counter())[indicator] += 1
    if row["order_after_index"]:
        summary.order_cards[row["order_indicator"]] += 1
    if not row["presumed"]:
        return
    summary.presumed += 1
    if row["total"] is not None:
        summary.scores[row["total"]] += 1
    if row["classification"]:
        summary.classifications[row["classification"]] += 1
    for key, target in (
        ("exclusions_present", summary.exclusions_present),
        ("exclusions_unresolved", summary.exclusions_unresolved),
    ):
        target.update(x for x in (row[key] or "").split(";") if x)
    summary.igg4["measured" if row["igg4_measured"] else "not measured"] += 1
    actions = set((row["order_actions"] or "").split(";"))
    if actions & {"resection", "systemic-therapy"}:
        summary.acted += 1
        summary.acted_without_igg4 += 0 if row["order_igg4_measured"] else 1
    if row["days_to_resection"] is not None:
        summary.to_resection[row["days_to_resection"]] += 1
    if row["days_to_chemotherapy"] is not None:
        summary.to_chemotherapy[row["days_to_chemotherapy"]] += 1


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_per_month(summary: Summary) -> str:
    """Stacked bars: cards at the index date per month, warning and info."""
    fig, ax = plt.subplots(figsize=(9, 3.2))
    months = sorted(summary.per_month)
    if not months:
        _empty(ax, "no card would have shown")
    bottom = [0] * len(months)
    for indicator, colour in INDICATOR_COLOURS.items():
        values = [summary.per_month[m][indicator] for m in months]
        if months:
            ax.bar(months, values, bottom=bottom, color=colour, label=indicator)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    if months:
        ax.legend(frameon=False)
        ax.set_ylabel("cards")
        ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    ax.set_title("Cards that would have shown, per month of the index date")
    return _svg(fig)


def plot_scores(summary: Summary) -> str:
    """Histogram of ACR/EULAR totals among presumed CCA, the threshold and the fixture patients."""
    fig, ax = plt.subplots(figsize=(9, 3.4))
    if summary.scores:
        top = max(*summary.scores, THRESHOLD + 5)
        totals = sorted(summary.scores)
        ax.hist(
            totals,
            bins=range(0, top + 2),
            weights=[summary.scores[t] for t in totals],
            color="#718096",
            align="left",
        )
        ax.axvline(THRESHOLD - 0.5, color="#c53030", linestyle="--", label=f"threshold {THRESHOLD}")
        by_total: dict[int, list[str]] = {}
        for fixture in summary.fixtures:
            if fixture["total"] is not None and fixture["presumed"]:
                by_total.setdefault(fixture["total"], []).append(str(fixture["fixture"])[:2])
        heights = summary.scores
        for total, labels in sorted(by_total.items()):
            ax.plot(total, heights[total], marker="v", color="#2f855a", markersize=7)
            ax.annotate(
                " " + ",".join(sorted(labels)),
                (total, heights[total]),
                textcoords="offset points",
                xytext=(0, 6),
                rotation=90,
                fontsize=7,
                color="#2f855a",
                ha="center",
                va="bottom",
            )
        if by_total:
            ax.plot([], [], "v", color="#2f855a", label="fixture patients (numbers)")
            ax.set_ylim(top=max(heights.values()) * 1.6 + 1)
        ax.legend(frameon=False)
        ax.set_xlabel("total points")
        ax.set_ylabel("patients")
    else:
        _empty(ax, "no presumed cholangiocarcinoma")
    ax.set_title("ACR/EULAR total at the index date, presumed cholangiocarcinoma")
    return _svg(fig)


def plot_counts(summary: Summary) -> str:
    """Bars: classification counts, and exclusions present / unresolved."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.bar(CLASSIFICATIONS, [summary.classifications[c] for c in CLASSIFICATIONS], color="#4a5568")
    left.set_title("Classification (presumed CCA)")
    left.tick_params(axis="x", labelsize=7)
    names = sorted(set(summary.exclusions_present) | set(summary.exclusions_unresolved))
    if names:
        positions = range(len(names))
        right.barh(
            [p + 0.2 for p in positions],
            [summary.exclusions_present[n] for n in names],
            height=0.4,
            color="#c53030",
            label="present",
        )
        right.barh(
            [p - 0.2 for p in positions],
            [summary.exclusions_unresolved[n] for n in names],
            height=0.4,
            color="#ecc94b",
            label="unresolved",
        )
        right.set_yticks(list(positions), names, fontsize=7)
        right.legend(frameon=False, fontsize=7)
    else:
        _empty(right, "no exclusion")
    right.set_title("Exclusions")
    return _svg(fig)


def plot_igg4(summary: Summary) -> str:
    """Bars: serum IgG4 measured or not among presumed CCA, and among those resected or treated."""
    fig, ax = plt.subplots(figsize=(9, 2.8))
    labels = ["presumed CCA, by the index date", "resection or chemotherapy ordered, by the order date"]
    measured = [summary.igg4["measured"], summary.acted - summary.acted_without_igg4]
    missing = [summary.igg4["not measured"], summary.acted_without_igg4]
    ax.barh(labels, measured, color="#2f855a", label="IgG4 measured")
    ax.barh(labels, missing, left=measured, color="#a0aec0", label="IgG4 not measured")
    ax.legend(frameon=False, fontsize=8)
    ax.set_xlabel("patients")
    ax.set_title("Serum IgG4 measured among presumed cholangiocarcinoma")
    return _svg(fig)


def plot_time_to_treatment(summary: Summary) -> str:
    """Histograms: days from the index date to the first resection and chemotherapy order."""
    fig, ax = plt.subplots(figsize=(9, 3.2))
    series = [
        (summary.to_resection, "resection", "#805ad5"),
        (summary.to_chemotherapy, "chemotherapy", "#dd6b20"),
    ]
    drawn = [(v, label, c) for v, label, c in series if v]
    if drawn:
        ax.hist(
            [sorted(v) for v, _, _ in drawn],
            bins=20,
            weights=[[v[d] for d in sorted(v)] for v, _, _ in drawn],
            label=[lab for _, lab, _ in drawn],
            color=[c for _, _, c in drawn],
        )
        ax.legend(frameon=False)
        ax.set_xlabel("days from the index date")
        ax.set_ylabel("patients")
    else:
        _empty(ax, "no resection or chemotherapy ordered after the index date")
    ax.set_title("Time from presumption to resection or chemotherapy order")
    return _svg(fig)


_CSS: Final = """
body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#1a202c}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #cbd5e0;padding:.25em .6em;text-align:left}
figure{margin:1.5em 0}figure svg{max-width:100%;height:auto}.note{color:#4a5568;font-size:.9em}
"""


def _table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _fixture_table(summary: Summary) -> str:
    if not summary.fixtures:
        return "<p class='note'>No fixture patient in this population.</p>"
    head = "<tr><th>fixture</th><th>card</th><th>total</th><th>classification</th><th>order card</th></tr>"
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v if v is not None else ''))}</td>"
            for v in (f["fixture"], f["indicator"], f["total"], f["classification"], f["order_indicator"])
        )
        + "</tr>"
        for f in sorted(summary.fixtures, key=lambda f: str(f["fixture"]))
    )
    return f"<table id='fixtures'>{head}{body}</table>"


def render(summary: Summary, meta: dict[str, str]) -> str:
    """The whole page."""
    figures = [
        plot_per_month(summary),
        plot_scores(summary),
        plot_counts(summary),
        plot_igg4(summary),
        plot_time_to_treatment(summary),
    ]
    overview = _table(
        [
            ("patients", summary.patients),
            ("presumed cholangiocarcinoma at the index date", summary.presumed),
            ("warning cards", summary.cards["warning"]),
            ("info cards", summary.cards["info"]),
            ("acting order on or after the index date", sum(summary.order_cards.values())),
            (
                "… whose order-sign card would have been warning / info / none",
                f"{summary.order_cards['warning']} / {summary.order_cards['info']} / {summary.order_cards['none']}",
            ),
            (
                "resection or chemotherapy ordered without a serum IgG4",
                f"{summary.acted_without_igg4} of {summary.acted}",
            ),
        ]
    )
    about = _table(sorted(meta.items()))
    plots = "".join(f"<figure>{svg}</figure>" for svg in figures)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<title>IgG4-RD CDS silent-mode audit</title>"
        f"<style>{_CSS}</style></head><body>"
        "<h1>IgG4-RD CDS: silent-mode audit</h1>"
        "<p class='note'>What the service would have shown, patient by patient, at the date the presumption of "
        "cholangiocarcinoma began (or the audit's as-of date). Classification criteria are not a diagnosis.</p>"
        f"<h2>Overview</h2>{overview}<h2>Plots</h2>{plots}"
        f"<h2>Fixture patients</h2>{_fixture_table(summary)}<h2>This run</h2>{about}</body></html>"
    )


def write_report(parquet: Path, target: Path, meta: dict[str, str]) -> Summary:
    """Write report.html from patients.parquet; returns the figures."""
    summary = summarise(parquet)
    target.write_text(render(summary, meta), encoding="utf-8")
    return summary
