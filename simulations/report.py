"""The back-test report: one self-contained HTML page of a `SimulationResult`, charts included.

Input: a `SimulationResult` (and the engine's description). Output: HTML text that needs nothing but itself to
open — no script, no stylesheet or font fetched, every chart an inline SVG drawn server-side by matplotlib —
with the headline figures, outcome and reason charts, the score distribution by label and its bad rate by band,
the swap-set matrix and sample of a comparison, per-segment tables, the items never hit, and everything needed
to reproduce the run: the policy versions' content hashes, the data files with their sizes and SHA-256, the
query and the options. Every value is escaped; personal values appear only masked (the sample is masked when
it is taken).
"""

from __future__ import annotations

import html
import io
from collections.abc import Iterable, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: draw to files only

import matplotlib.pyplot as plt

COLOURS = ("#2f6f9f", "#d08c2f", "#5b9a5b", "#b04a4a", "#7a5ea8", "#7f7f7f", "#3fa3a3", "#a36b3f")
plt.rcParams.update(
    {
        "svg.fonttype": "none",  # text stays text: smaller, and selectable
        "svg.hashsalt": "decide",  # element ids from content, not random: the same data draws the same page
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 68rem; color: #222; line-height: 1.4; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; } h2 { font-size: 1.15rem; margin-top: 2rem;
  border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; } h3 { font-size: 1rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.85rem; }
th, td { border: 1px solid #ddd; padding: 0.2rem 0.5rem; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
.headline { display: flex; flex-wrap: wrap; gap: 0.8rem; margin: 1rem 0; }
.figure { border: 1px solid #ddd; border-radius: 4px; padding: 0.5rem 0.9rem; min-width: 8rem; }
.figure .value { font-size: 1.3rem; font-weight: 600; } .figure .name { font-size: 0.8rem; color: #555; }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; } .chart svg { max-width: 100%; height: auto; }
.partial { background: #fff3cd; border: 1px solid #e0c36a; padding: 0.6rem 1rem; font-weight: 600; }
code, pre { font-size: 0.8rem; background: #f6f6f6; } pre { padding: 0.5rem; overflow-x: auto; }
.muted { color: #666; font-size: 0.85rem; }
@media print { body { margin: 0.5cm; max-width: none; } h2 { break-after: avoid; } }
"""


def render_html(result: Any, engine: str = "") -> str:
    """The report of `result` as one HTML page."""
    metrics = result.metrics
    comparison = result.comparison
    title = f"Back-test of {result.policy} ({result.content_hash[:8]})" + (
        f" against {result.against.policy} ({result.against.content_hash[:8]})" if result.against else ""
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="muted">{_e(result.kind)} policy · content hash <code>{_e(result.content_hash)}</code>'
        + (f" · against <code>{_e(result.against.content_hash)}</code>" if result.against else "")
        + "</p>",
    ]
    if result.partial:
        parts.append(
            '<p class="partial">Partial: the run was stopped before the end of the data. Every figure covers the '
            f"{metrics['rows']:,} rows read, not the whole data.</p>"
        )
    parts += _headline(metrics, comparison)
    parts += _outcomes(metrics)
    parts += _kind_section(metrics.get(result.kind), result.kind)
    if "label" in metrics:
        parts += _label_section(metrics["label"])
    if comparison is not None:
        parts += _comparison_section(comparison, result.options.get("label") is not None)
    if "segments" in metrics:
        parts += _segments(metrics["segments"])
    if result.stability is not None:
        parts += _stability(result.stability)
    parts += _never_hit(metrics.get("hits", []))
    parts += _errors(metrics)
    parts += _provenance(result, engine)
    parts.append("</body></html>")
    return "\n".join(parts)


# ----------------------------------------------------------------------------- sections


def _headline(metrics: dict[str, Any], comparison: dict[str, Any] | None) -> list[str]:
    figures = [
        ("rows", f"{metrics['rows']:,}"),
        ("decided", f"{metrics['decided']:,}"),
        ("input errors", f"{metrics['input_errors']['rows']:,}"),
        ("evaluation errors", f"{metrics['evaluation_errors']['rows']:,}"),
    ]
    approval = metrics.get("approval")
    if approval:
        figures += [(f"{name} rate", _pct(approval[f"{name}_rate"])) for name in ("approve", "refer", "decline")]
        if "bad_rate_approved" in approval:
            figures.append(("bad rate approved", _pct(approval["bad_rate_approved"], 2)))
    label = metrics.get("label")
    if label:
        figures.append((f"bad rate ({label['column']})", _pct(label["bad_rate"], 2)))
        for name, body in label["by_output"].items():
            separation = body.get("separation")
            if separation and separation["gini"] is not None:
                figures.append((f"Gini of {name}", f"{separation['gini']:.3f}"))
                figures.append((f"KS of {name}", f"{separation['ks']:.3f}"))
    if comparison:
        figures.append((f"{comparison['output']} changed", f"{comparison['changed_rows']:,}"))
    cards = "".join(
        f'<div class="figure"><div class="value">{_e(value)}</div><div class="name">{_e(name)}</div></div>'
        for name, value in figures
    )
    return ["<h2>Headline</h2>", f'<div class="headline">{cards}</div>']


def _outcomes(metrics: dict[str, Any]) -> list[str]:
    charts = []
    tables = []
    for name, distribution in metrics["outputs"].items():
        values = distribution["values"]
        numeric = distribution.get("numeric")
        if numeric is not None and len(values) > 12:
            quantiles = numeric["quantiles"]
            tables.append(
                _table(
                    [f"{name}", "count", "mean", "min", *quantiles, "max"],
                    [
                        [
                            name,
                            numeric["count"],
                            _num(numeric["mean"]),
                            numeric["min"],
                            *quantiles.values(),
                            numeric["max"],
                        ]
                    ],
                )
            )
            charts.append(_chart(_histogram_from_counts, name, values))
            continue
        shown = values[:12]
        charts.append(_chart(_bars, name, [str(item["value"]) for item in shown], [item["share"] for item in shown]))
        tables.append(
            _table(
                [name, "rows", "share"], [[str(item["value"]), item["rows"], _pct(item["share"])] for item in values]
            )
        )
    reasons = metrics["reasons"]["first"][:12]
    charts.append(
        _chart(
            _bars,
            "first reason",
            [str(item["value"]) if item["value"] is not None else "(none)" for item in reasons],
            [item["share"] for item in reasons],
        )
    )
    return ["<h2>Outcomes and reasons</h2>", _charts(charts), *tables]


def _kind_section(figures: dict[str, Any] | None, kind: str) -> list[str]:
    if not figures or kind == "approval":
        return []
    parts = [f"<h2>{_e(kind.capitalize())} figures</h2>"]
    if "granted" in figures:
        granted = figures["granted"]
        parts.append(
            f"<p>Granted limits: {granted['rows']:,} rows, total {granted['total']:,.0f}, mean "
            f"{_num(granted['mean']) if granted['mean'] is not None else 'n/a'}.</p>"
        )
    if "actions" in figures:
        columns = [key for key in ("change_total", "change_mean", "contacts_per_day") if key in figures["actions"][0]]
        parts.append(
            _table(
                ["action", "rows", "share", *[c.replace("_", " ") for c in columns]],
                [
                    [
                        a["action"],
                        a["rows"],
                        _pct(a["share"]),
                        *[_num(a[c]) if a[c] is not None else "" for c in columns],
                    ]
                    for a in figures["actions"]
                ],
            )
        )
    if "offers" in figures:
        parts.append(
            f"<p>{figures['offers_per_customer']:.2f} offers per customer; {_pct(figures['offered_share'])} "
            "offered at least one.</p>"
        )
        money = any("cost" in o for o in figures["offers"])
        header = ["offer", "rows", "share", "value", "take-up", *(["revenue", "cost", "ROI", "drop"] if money else [])]
        rows = []
        for o in figures["offers"]:
            row = [o["offer"], o["rows"], _pct(o["share"]), _num(o["value_total"]) if "value_total" in o else "",
                   _pct(o.get("take_up"), 2) if "take_up" in o else ""]  # fmt: skip
            if money:
                roi = "" if o.get("roi") is None else f"{o['roi']:.2f}"
                row += [_num(o.get("revenue", 0)), _num(o.get("cost", 0)), roi, "drop" if o.get("drop") else ""]
            rows.append(row)
        parts.append(_table(header, rows))
    return parts


def _label_section(label: dict[str, Any]) -> list[str]:
    parts = [
        f"<h2>Against the observed outcome: {_e(label['column'])}</h2>",
        f"<p>{label['rows']:,} labelled rows, {label['bads']:,} bad (<code>{_e(label['bad_value'])}</code>): "
        f"bad rate {_pct(label['bad_rate'], 2)}; {label['unlabelled']:,} decided rows without a label.</p>",
    ]
    for name, body in label["by_output"].items():
        separation = body.get("separation")
        if separation and separation["auc"] is not None:
            parts.append(
                f"<h3>{_e(name)}: KS {separation['ks']:.3f} · AUC {separation['auc']:.3f} · "
                f"Gini {separation['gini']:.3f}</h3>"
            )
            bands = separation["bands"]
            parts.append(
                _charts(
                    [
                        _chart(_good_bad_histogram, name, body["values"]),
                        _chart(
                            _bars,
                            f"bad rate by {name} band",
                            [f"≤ {band['up_to']}" for band in bands],
                            [band["bad_rate"] for band in bands],
                        ),
                    ]
                )
            )
            parts.append(
                _table(
                    ["above", "up to", "rows", "bads", "bad rate"],
                    [
                        [
                            band["above"] if band["above"] is not None else "",
                            band["up_to"],
                            band["rows"],
                            band["bads"],
                            _pct(band["bad_rate"], 2),
                        ]
                        for band in bands
                    ],
                )
            )
        elif len(body["values"]) <= 20:
            parts.append(f"<h3>Bad rate by {_e(name)}</h3>")
            parts.append(
                _table(
                    [name, "rows", "bads", "bad rate"],
                    [
                        [str(item["value"]), item["rows"], item["bads"], _pct(item["bad_rate"], 2)]
                        for item in body["values"]
                    ],
                )
            )
    return parts


def _comparison_section(comparison: dict[str, Any], labelled: bool) -> list[str]:
    parts = [
        f"<h2>Swap set on {_e(comparison['output'])}</h2>",
        f"<p>{comparison['changed_rows']:,} of {comparison['rows']:,} rows ({_pct(comparison['changed_share'])}) "
        "change outcome.</p>",
    ]
    before = sorted({cell["before"] for cell in comparison["cells"]}, key=str)
    after = sorted({cell["after"] for cell in comparison["cells"]}, key=str)
    cells = {(cell["before"], cell["after"]): cell for cell in comparison["cells"]}
    header = "".join(f"<th>{_e(value)}</th>" for value in after)
    body = []
    for old in before:
        row = []
        for new in after:
            cell = cells.get((old, new))
            if cell is None:
                row.append("<td></td>")
                continue
            rate = f"<br>bad {_pct(cell.get('bad_rate'), 2)}" if labelled and "bad_rate" in cell else ""
            style = ' style="background:#fbeee0"' if old != new else ""
            row.append(f"<td{style}>{cell['rows']:,}<br>{_pct(cell['share'])}{rate}</td>")
        body.append(f'<tr><th class="text">{_e(old)}</th>{"".join(row)}</tr>')
    parts.append(f'<table><tr><th class="text">before ↓ / after →</th>{header}</tr>{"".join(body)}</table>')
    groups = [(name, comparison[name]) for name in ("swap_in", "swap_out") if name in comparison]
    if groups:
        parts.append(
            _table(
                ["", "rows", "labelled", "bads", "bad rate"],
                [
                    [name.replace("_", "-"), g["rows"], g["labelled"], g["bads"], _pct(g["bad_rate"], 2)]
                    for name, g in groups
                ],
            )
        )
    if comparison.get("deltas"):
        parts.append("<h3>Deltas (after − before)</h3>")
        parts.append(
            _table(["figure", "delta"], [[name, _signed_pct(value)] for name, value in comparison["deltas"].items()])
        )
    if comparison["hit_changes"]:
        parts.append("<h3>Items whose hit counts moved most</h3>")
        parts.append(
            _table(
                ["statement", "item", "title", "line", "before", "after", "delta"],
                [
                    [
                        m["statement"],
                        m["label"],
                        m["title"] or "",
                        m["line"],
                        m["before"],
                        m["after"],
                        f"{m['delta']:+,}",
                    ]
                    for m in comparison["hit_changes"]
                ],
                text_columns=3,
            )
        )
    if comparison["sample"]:
        parts.append("<h3>A sample of swapped rows (personal values masked)</h3>")
        rows = []
        for item in comparison["sample"]:
            rows.append(
                [
                    ", ".join(f"{k}={v}" for k, v in item["input"].items()),
                    _decision_text(item["before"]),
                    _decision_text(item["after"]),
                ]
            )
        parts.append(_table(["input", "before", "after"], rows, text_columns=3))
    return parts


def _segments(segments: dict[str, list[dict[str, Any]]]) -> list[str]:
    parts = ["<h2>Segments</h2>"]
    for column, values in segments.items():
        rows = []
        for item in values:
            approval = item.get("approval", {})
            label = item.get("label", {})
            rows.append(
                [
                    str(item["value"]),
                    item["rows"],
                    item["decided"],
                    _pct(approval.get("approve_rate")),
                    _pct(label.get("bad_rate"), 2),
                ]
            )
        parts.append(f"<h3>{_e(column)}</h3>")
        parts.append(_table([column, "rows", "decided", "approve rate", "bad rate"], rows))
    return parts


def _stability(figures: dict[str, Any]) -> list[str]:
    parts = [
        "<h2>Stability against the baseline</h2>",
        f"<p>Population stability index (PSI) of each input and output against the baseline's "
        f"{figures['baseline']['rows']:,} rows: under 0.1 stable, 0.1–0.25 a moderate shift, over 0.25 major.</p>",
    ]
    rows = []
    for side in ("inputs", "outputs"):
        for name, figure in figures[side].items():
            psi = "" if figure["psi"] is None else f"{figure['psi']:.4f}"
            rows.append([side[:-1], name, psi, figure["reading"]])
    parts.append(_table(["", "column", "PSI", "reading"], rows, text_columns=2))
    return parts


def _never_hit(hits: Sequence[dict[str, Any]]) -> list[str]:
    if not hits:
        return []
    rows = []
    for statement in hits:
        titles = {item["label"]: item for item in statement["items"]}
        for label in statement["never_hit"]:
            item = titles[label]
            rows.append([statement["statement"], label, item["title"] or "", item["line"]])
    parts = ["<h2>Items never hit on this data</h2>"]
    if not rows:
        parts.append("<p>Every rule, row, bin and branch fired for at least one row.</p>")
    else:
        parts.append(_table(["statement", "item", "title", "line"], rows, text_columns=3))
    parts.append(
        _table(
            ["statement", "kind", "line", "rows evaluated", "items", "never hit"],
            [
                [s["statement"], s["kind"], s["line"], s["evaluated_rows"], len(s["items"]), len(s["never_hit"])]
                for s in hits
            ],
            text_columns=2,
        )
    )
    return parts


def _errors(metrics: dict[str, Any]) -> list[str]:
    parts = []
    if metrics["input_errors"]["by_field"]:
        parts.append("<h2>Input errors by field</h2>")
        parts.append(_table(["field", "rows"], [[i["field"], i["rows"]] for i in metrics["input_errors"]["by_field"]]))
    if metrics["evaluation_errors"]["by_error"]:
        parts.append("<h2>Evaluation errors</h2>")
        parts.append(
            _table(
                ["code", "output", "rows"],
                [[i["code"], i["field"] or "", i["rows"]] for i in metrics["evaluation_errors"]["by_error"]],
            )
        )
    return parts


def _provenance(result: Any, engine: str) -> list[str]:
    files = [
        [item["path"], f"{item['bytes']:,}", item["sha256"]] if isinstance(item, dict) else [str(item), "", ""]
        for item in result.files
    ]
    options = [[name, "" if value is None else str(value)] for name, value in result.options.items()]
    return [
        "<h2>How to reproduce this report</h2>",
        _table(["data file", "bytes", "SHA-256"], files, text_columns=3),
        "<h3>Mapping query</h3>",
        f"<pre>{_e(result.query)}</pre>",
        _table(["option", "value"], options, text_columns=2),
        f'<p class="muted">Policy {_e(result.policy)} <code>{_e(result.content_hash)}</code>'
        + (
            f"; against {_e(result.against.policy)} <code>{_e(result.against.content_hash)}</code>"
            if result.against
            else ""
        )
        + f"; {result.batches:,} batch(es); engine: {_e(engine)}.</p>",
    ]


# ----------------------------------------------------------------------------- pieces


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}%}"


def _signed_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:+.2f} pt"


def _num(value: float) -> str:
    return f"{value:,.4g}"


def _decision_text(side: dict[str, Any]) -> str:
    if "error" in side:
        return f"error: {side['error']}"
    outputs = ", ".join(f"{k}={v}" for k, v in side["outputs"].items())
    return f"{outputs}; trace {' '.join(side['trace'])}"


def _table(header: Sequence[Any], rows: Iterable[Sequence[Any]], text_columns: int = 1) -> str:
    def cell(tag: str, position: int, value: Any) -> str:
        kind = ' class="text"' if position < text_columns else ""
        shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
        return f"<{tag}{kind}>{_e(shown)}</{tag}>"

    head = "".join(cell("th", i, name) for i, name in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, value) for i, value in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _charts(charts: Sequence[str]) -> str:
    return '<div class="charts">' + "".join(f'<div class="chart">{chart}</div>' for chart in charts) + "</div>"


def _chart(draw: Any, title: str, *data: Any) -> str:
    """One chart as inline SVG (no external reference, no date in its metadata: the same data, the same SVG)."""
    figure, axes = plt.subplots(figsize=(4.6, 2.8))
    try:
        draw(axes, *data)
        axes.set_title(title)
        figure.tight_layout()
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    finally:
        plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _bars(axes: Any, labels: Sequence[str], shares: Sequence[float | None]) -> None:
    labels = [label if len(label) <= 24 else label[:23] + "…" for label in labels]  # a list output's text is long
    heights = [share or 0.0 for share in shares]
    axes.bar(range(len(labels)), heights, color=[COLOURS[i % len(COLOURS)] for i in range(len(labels))])
    axes.set_xticks(
        range(len(labels)), labels, rotation=30 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center"
    )
    axes.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))


def _histogram_from_counts(axes: Any, values: Sequence[dict[str, Any]]) -> None:
    numbers = [(item["value"], item["rows"]) for item in values if item["value"] is not None]
    axes.hist([v for v, _ in numbers], weights=[n for _, n in numbers], bins=30, color=COLOURS[0])
    axes.set_ylabel("rows")


def _good_bad_histogram(axes: Any, values: Sequence[dict[str, Any]]) -> None:
    numbers = [item for item in values if item["value"] is not None]
    points = [item["value"] for item in numbers]
    bads = [item["bads"] for item in numbers]
    goods = [item["rows"] - item["bads"] for item in numbers]
    total_goods, total_bads = max(sum(goods), 1), max(sum(bads), 1)
    bins = 30
    axes.hist(points, weights=[g / total_goods for g in goods], bins=bins, alpha=0.6, label="good", color=COLOURS[0])
    axes.hist(points, weights=[b / total_bads for b in bads], bins=bins, alpha=0.6, label="bad", color=COLOURS[3])
    axes.legend(frameon=False)
    axes.set_ylabel("share of its class")
