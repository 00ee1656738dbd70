"""`decide simulate`: a back-test of a policy over historical data (simulations/), from the command line.

Input: a policy file, data files or directories (`--data`, repeatable), an optional mapping query file
(`--query`), the evaluation date (`--as-of DATE` or `--as-of-column COL`), list files, an observed-outcome column
(`--label`, `--bad`), segment columns, the batch size and threads. Output: a summary on standard output, every
figure as JSON with `--json FILE`, a progress bar on standard error when it is a terminal (not with `--quiet`);
exit codes of docs/cli.md: 0 done, 1 the policy does not compile, 2 the data, query, label or a list file cannot
be used, 130 stopped by Ctrl-C (the figures of the rows read are still written, marked partial).
"""

from __future__ import annotations

import datetime as _dt
import sys
from pathlib import Path
from typing import Any

import click
import orjson

EXIT_INTERRUPTED = 130


def _summary(result: Any) -> list[str]:
    metrics = result.metrics
    lines = [
        f"policy {result.policy} ({result.kind}) · {metrics['rows']:,} rows · "
        f"{metrics['decided']:,} decided · {metrics['input_errors']['rows']:,} input errors · "
        f"{metrics['evaluation_errors']['rows']:,} evaluation errors"
        + (" · PARTIAL: stopped before the end of the data" if result.partial else ""),
    ]
    for item in metrics["input_errors"]["by_field"][:5]:
        lines.append(f"  input errors in {item['field']}: {item['rows']:,}")
    list_outputs = {item.name for item in result.policy_object.outputs if item.type == "list"}
    for name, distribution in metrics["outputs"].items():
        if name in list_outputs:
            continue  # a list's distribution is one line per distinct list: the kind figures say it better
        numeric = distribution.get("numeric")
        if numeric is not None and len(distribution["values"]) > 12:
            q = numeric["quantiles"]
            lines.append(
                f"{name}: mean {numeric['mean']:,.4g} · min {numeric['min']:,} · p50 {q['p50']:,} · "
                f"p95 {q['p95']:,} · max {numeric['max']:,}"
            )
            continue
        shown = ", ".join(f"{item['value']} {item['share']:.1%}" for item in distribution["values"][:8])
        lines.append(f"{name}: {shown}")
    if "approval" in metrics:
        approval = metrics["approval"]
        rates = " · ".join(f"{k.removesuffix('_rate')} {approval[k]:.1%}" for k in ("approve_rate", "refer_rate",
                                                                                   "decline_rate"))  # fmt: skip
        lines.append(f"approval: {rates}")
        if "bad_rate_approved" in approval:
            lines.append(
                "  bad rate approved "
                + _share(approval["bad_rate_approved"])
                + " · declined "
                + _share(approval["bad_rate_declined"])
                + " · approved share of goods "
                + _share(approval["approved_share_of_goods"])
                + ", of bads "
                + _share(approval["approved_share_of_bads"])
            )
    lines += _kind_lines(metrics, result.kind)
    if "label" in metrics:
        label = metrics["label"]
        lines.append(
            f"label {label['column']} (bad = {label['bad_value']!r}): {label['rows']:,} rows, bad rate "
            f"{_share(label['bad_rate'])}"
        )
        for name, body in label["by_output"].items():
            separation = body.get("separation")
            if separation and separation["auc"] is not None:
                lines.append(
                    f"  {name}: KS {separation['ks']:.3f} · AUC {separation['auc']:.3f} · Gini {separation['gini']:.3f}"
                )
    reasons = metrics["reasons"]["first"]
    shown = ", ".join(f"{item['value'] or '(none)'} {item['share']:.1%}" for item in reasons[:6])
    lines.append(f"first reasons: {shown}")
    for column, figures in metrics.get("fair_lending", {}).items():
        if figures.get("favourable") is None:
            lines.append(f"fair lending by {column}: {figures['note']}")
            continue
        groups = " · ".join(
            f"{row['group']} {_share(row['rate'])} (AIR {row['adverse_impact_ratio']:.2f}"
            + (", under 0.8)" if row["flagged"] else ")")
            for row in figures["groups"]
            if row["rate"] is not None
        )
        lines.append(f"fair lending by {column} ({figures['favourable']}): {groups}")
    return lines


def _kind_lines(metrics: dict[str, Any], kind: str) -> list[str]:
    figures = metrics.get(kind)
    if not figures or kind == "approval":
        return []
    lines = []
    if kind == "limit" and "granted" in figures:
        granted = figures["granted"]
        lines.append(
            f"limit: {granted['rows']:,} granted, total {granted['total']:,.0f}, mean {_number(granted['mean'])}"
        )
    for entry in figures.get("actions", []):
        extra = ""
        if "change_total" in entry:
            extra = f", change total {entry['change_total']:,.0f} (mean {_number(entry['change_mean'])})"
        if "contacts_per_day" in entry:
            extra = f", {entry['contacts_per_day']:,.1f} contacts a day"
        lines.append(f"  {entry['action']}: {entry['rows']:,} rows ({entry['share']:.1%}){extra}")
    if kind == "collections" and "contacts_per_day" in figures:
        lines.append(f"  contacts a day planned: {figures['contacts_per_day']:,.1f}")
    if kind == "offer" and figures:
        per, share = figures["offers_per_customer"], figures["offered_share"]
        lines.append(f"offers: {per:.2f} per customer, {share:.1%} offered at least one")
        for entry in figures["offers"]:
            take_up = f", take-up {_share(entry['take_up'])}" if "take_up" in entry else ""
            value = f", value {entry['value_total']:,.0f}" if "value_total" in entry else ""
            roi = ""
            if "cost" in entry:
                shown = "n/a" if entry["roi"] is None else f"{entry['roi']:.2f}"
                roi = f", revenue {entry['revenue']:,.0f}, cost {entry['cost']:,.0f}, ROI {shown}"
                roi += " — drop (ROI under 1)" if entry["drop"] else ""
            lines.append(f"  {entry['offer']}: {entry['rows']:,} offered ({entry['share']:.1%}){value}{take_up}{roi}")
    return lines


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _stability_lines(result: Any) -> list[str]:
    if result.stability is None:
        return []
    lines = [f"stability against the baseline ({result.stability['baseline']['rows']:,} rows), PSI:"]
    for side in ("inputs", "outputs"):
        figures = result.stability[side]
        shifted = sorted(figures.items(), key=lambda item: -(item[1]["psi"] or 0))
        shown = ", ".join(f"{name} {f['psi']:.3f}" + (f" ({f['reading']})" if f["reading"] != "stable" else "")
                          for name, f in shifted if f["psi"] is not None)  # fmt: skip
        lines.append(f"  {side}: {shown}")
    return lines


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


@click.command()
@click.argument("policy_file", metavar="POLICY")
@click.option("--data", "data", multiple=True, required=True, metavar="PATH",
              help="A CSV, Parquet or JSON Lines file, or a directory of them (repeatable).")  # fmt: skip
@click.option("--against", "against_file", metavar="OTHER", help="The version POLICY would replace: compare the two.")
@click.option("--compare-on", metavar="OUTPUT", help="The output the swap set compares (default: decision).")
@click.option("--query", "query_file", metavar="FILE", help="A SQL SELECT over the view `data` mapping it to inputs.")
@click.option("--as-of", "as_of", metavar="YYYY-MM-DD", help="The evaluation date of every row (default: today).")
@click.option("--as-of-column", metavar="COL", help="A date column holding each row's evaluation date.")
@click.option(
    "--list", "list_specs", multiple=True, metavar="NAME=FILE", help="Members of list NAME, one per line (repeatable)."
)
@click.option("--label", metavar="COL", help="A column of the observed outcome (default flag, response).")
@click.option("--bad", metavar="VALUE", help="The --label value that means bad (default: 1, true, yes …).")
@click.option("--segment", "segments", multiple=True, metavar="COL", help="Also report per value of COL (repeatable).")
@click.option("--protected", multiple=True, metavar="COL",
              help="A column the policy does not read (race, sex, age band): approval rate and adverse impact "
                   "ratio per group (repeatable).")  # fmt: skip
@click.option("--offer-revenue", metavar="COL", help="(offer) A column of the revenue a taken offer brings.")
@click.option("--offer-cost", metavar="COL", help="(offer) A column of what making an offer costs: ROI per offer.")
@click.option(
    "--baseline",
    multiple=True,
    metavar="PATH",
    help="Earlier data (same format and query): the stability index (PSI) of each input and output.",
)
@click.option("--json", "json_path", metavar="FILE", help="Write every figure as JSON (- for standard output).")
@click.option("--out", "report_path", metavar="FILE", help="Write the report: one self-contained HTML page.")
@click.option("--decisions", "decisions_path", metavar="FILE.parquet", help="Write every row's decision.")
@click.option("--id", "ids", multiple=True, metavar="COL",
              help="Columns put before each row's decision in --decisions (default: the policy's key).")  # fmt: skip
@click.option("--engine", type=click.Choice(["local", "spark"]), default="local", show_default=True,
              help="In this process, or on Spark (DECIDE_SPARK_MASTER, default local[2]).")  # fmt: skip
@click.option("--batch-rows", type=click.IntRange(min=1), default=262_144, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="Kernel threads (default: one per core).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def simulate(
    policy_file: str,
    against_file: str | None,
    compare_on: str | None,
    data: tuple[str, ...],
    query_file: str | None,
    as_of: str | None,
    as_of_column: str | None,
    list_specs: tuple[str, ...],
    label: str | None,
    bad: str | None,
    segments: tuple[str, ...],
    protected: tuple[str, ...],
    baseline: tuple[str, ...],
    offer_revenue: str | None,
    offer_cost: str | None,
    json_path: str | None,
    report_path: str | None,
    decisions_path: str | None,
    ids: tuple[str, ...],
    engine: str,
    batch_rows: int,
    threads: int | None,
    quiet: bool,
) -> None:
    """Back-test POLICY on historical data: outcomes, reasons, errors and, with --label, bad rates and KS/Gini."""
    from decide_cli.main import EXIT_INPUT, CliExit, _err, _load_policy, _read_lists
    from simulations import SimulationError, open_data, run

    if as_of is not None and as_of_column is not None:
        raise click.UsageError("give --as-of or --as-of-column, not both")
    if as_of is not None:
        try:
            _dt.date.fromisoformat(as_of)
        except ValueError:
            raise click.BadParameter(f"{as_of!r} is not a date YYYY-MM-DD", param_hint="--as-of") from None
    policy = _load_policy(policy_file)
    other = _load_policy(against_file) if against_file is not None else None
    lists = _lists_for(policy, other, list_specs, _read_lists)
    query = None
    if query_file is not None:
        try:
            query = Path(query_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            _err(f"error: cannot read the query file {query_file}: {getattr(exc, 'strerror', None) or exc}")
            raise CliExit(EXIT_INPUT) from None
    progress = None
    options: dict[str, Any] = {
        "against": other, "compare_on": compare_on, "as_of": as_of_column or as_of, "lists": lists, "label": label,
        "bad": bad, "segments": segments, "protected": protected, "baseline": list(baseline) or None,
        "offer_revenue": offer_revenue, "offer_cost": offer_cost, "decisions": decisions_path,
        "batch_rows": batch_rows,
    }  # fmt: skip
    try:
        if engine == "spark":
            result = run(policy, list(data), query=query, engine="spark", **options)
        else:
            source = open_data(list(data), query, batch_rows)
            try:
                if as_of_column is not None and as_of_column not in source.schema.names:
                    raise SimulationError(f"the data has no column {as_of_column} (for --as-of-column)")
                if not quiet and sys.stderr.isatty():
                    progress = _Progress(source.count())
                result = run(
                    policy,
                    source,
                    ids=list(ids) or None,
                    threads=threads,
                    on_batch=progress.advance if progress else None,
                    stop_on_interrupt=True,
                    **options,
                )
            finally:
                if progress is not None:
                    progress.stop()
                source.close()
        metrics = result.to_json()
    except SimulationError as exc:
        _err(f"error: {exc}")
        raise CliExit(EXIT_INPUT) from None
    _report(result, metrics, json_path, report_path)


def _report(result: Any, metrics: dict[str, Any], json_path: str | None, report_path: str | None) -> None:
    """The summary (or the JSON on standard output), the JSON file and the report; exit 130 for a partial run."""
    from decide_cli.main import CliExit, _err, _out

    if json_path == "-":
        _out(orjson.dumps(metrics, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
    else:
        for line in [*_summary(result), *_comparison_lines(result), *_stability_lines(result)]:
            _out(line)
        if json_path is not None:
            _write_json(json_path, metrics)
    if report_path is not None:
        from compiler import COMPILER_VERSION
        from compiler.evaluate import implementation
        from simulations.report import render_html

        engine = f"Decide compiler {COMPILER_VERSION}, {implementation.describe()}"
        _write_text(report_path, render_html(result, engine))
    if result.partial:
        _err("stopped by Ctrl-C: the figures cover the rows read before it (marked partial)")
        raise CliExit(EXIT_INTERRUPTED)


def _lists_for(policy: Any, other: Any, specs: tuple[str, ...], read: Any) -> dict[str, list[Any]]:
    """The --list files, each read for the version that declares the list (POLICY first)."""
    if other is None:
        return read(policy, specs)
    mine = tuple(spec for spec in specs if spec.partition("=")[0] in policy.store_lists)
    theirs = tuple(spec for spec in specs if spec not in mine)
    return {**read(other, theirs), **read(policy, mine)}


def _comparison_lines(result: Any) -> list[str]:
    comparison = result.comparison
    if comparison is None:
        return []
    lines = [
        f"against {result.against.policy} ({result.against.content_hash[:12]}): {comparison['changed_rows']:,} rows "
        f"({comparison['changed_share']:.1%}) change {comparison['output']}",
        f"  {'before':<20}{'after':<20}{'rows':>10}{'share':>8}"
        + (f"{'bad rate':>10}" if result.options.get("label") else ""),
    ]
    for cell in comparison["cells"]:
        rate = f"{_share(cell.get('bad_rate')):>10}" if result.options.get("label") else ""
        lines.append(f"  {cell['before']!s:<20}{cell['after']!s:<20}{cell['rows']:>10,}{cell['share']:>8.1%}{rate}")
    for name in ("swap_in", "swap_out"):
        if name in comparison:
            group = comparison[name]
            lines.append(f"  {name.replace('_', '-')}: {group['rows']:,} rows, bad rate {_share(group['bad_rate'])}")
    for item in comparison["hit_changes"][:5]:
        lines.append(
            f"  {item['statement']}:{item['label']} (line {item['line']}) {item['before']:,} → {item['after']:,}"
        )
    return lines


def _write_json(path: str, body: Any) -> None:
    _write_text(path, orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


def _write_text(path: str, text: str) -> None:
    """Write a whole file or nothing (a reader never sees half a report)."""
    from decide_cli.main import EXIT_INPUT, CliExit, _err, _write_atomically

    try:
        _write_atomically(Path(path), text)
    except OSError as exc:
        _err(f"error: cannot write {path}: {exc.strerror}")
        raise CliExit(EXIT_INPUT) from None


class _Progress:
    """A rich progress bar on standard error: rows done, rows a second, time left."""

    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("simulating"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._bar.add_task("rows", total=total, rate="")
        self._bar.start()

    def advance(self, rows: int) -> None:
        self._bar.advance(self._task, rows)
        speed = self._bar.tasks[0].speed
        self._bar.update(self._task, rate=f"{speed:,.0f} rows/s" if speed else "")

    def stop(self) -> None:
        self._bar.stop()


def register(cli: click.Group) -> None:
    cli.add_command(simulate)
