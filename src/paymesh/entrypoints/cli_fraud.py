"""`paymesh fraud generate | train | backtest`: make a labelled history, learn a model, judge it.

Thin: the work is in `paymesh.fraud.training`; here are the files, the settings and the table.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from paymesh.config import Settings
from paymesh.fraud.rules import RuleError, RuleSet
from paymesh.fraud.transactions import TransactionError

HistoryArg = Annotated[Path, typer.Argument(help="a labelled history (JSON Lines)")]


def _rules(path: Path | None) -> RuleSet:
    return RuleSet.load(path or Settings.from_env().fraud_rules)


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


def generate(
    out: Annotated[Path, typer.Option(help="where to write the history (JSON Lines)")],
    payments: Annotated[int, typer.Option(min=1_000, help="how many payments")] = 117_000,
    seed: Annotated[int, typer.Option(help="the same seed makes the same history")] = 1,
    as_api: Annotated[
        bool,
        typer.Option(
            "--as-api",
            help="as the API's payments make it: no coordinates, shop kind or channel;"
            " approvals and declines as feedback after the score",
        ),
    ] = False,
) -> None:
    """Write a labelled synthetic history: customers and shops with habits, five attacks and
    five legitimate look-alikes, disputes arriving days later (`paymesh.fraud.generator`)."""
    from paymesh.fraud.generator import generate_episodes, history_records

    stream, episodes = generate_episodes(payments, seed)
    records = history_records(stream, episodes, seed, as_api=as_api)
    with open(out, "w", encoding="utf-8") as file:
        for record in records:
            file.write(json.dumps(record) + "\n")
    frauds = sum(1 for r in records if r.get("fraud"))
    typer.echo(f"{len(stream):,} payments ({frauds:,} fraud), seed {seed}: {out}")


def train(
    history: HistoryArg,
    out: Annotated[Path, typer.Option(help="where to write the model file")],
    seed: Annotated[int, typer.Option(help="the training's random seed")] = 0,
    rules: Annotated[Path | None, typer.Option(help="rules file (default: configured)")] = None,
) -> None:
    """Learn a fraud model from a labelled history; its thresholds are set on the history's
    last 30%: alert on 0.05% of its legitimate payments, block from half a nat above that."""
    from paymesh.fraud.training import replay_history, train

    try:
        from paymesh.fraud.replay import read_records

        with open(history, encoding="utf-8") as lines:
            replayed = replay_history(read_records(lines, "jsonl"), _rules(rules))
        model = train(replayed, seed=seed)
    except (TransactionError, RuleError, OSError, ValueError) as exc:
        raise _fail(exc) from exc
    out.write_text(model.to_json() + "\n", encoding="utf-8")
    info = model.info
    typer.echo(
        f"model {model.version}: {info['trees']} trees, {len(model.features)} features;"
        f" learned from {info['trained_on']:,} payments, validated on {info['validated_on']:,}"
        f" (PR-AUC {info['validation_pr_auc']:.3f}); written to {out}"
    )


def backtest(
    history: HistoryArg,
    model: Annotated[
        str | None, typer.Option(help='candidate model: a file, "packaged" or "none"')
    ] = None,
    rules: Annotated[Path | None, typer.Option(help="candidate rules file")] = None,
    against_model: Annotated[
        str | None, typer.Option(help="current model (default: PAYMESH_FRAUD_MODEL)")
    ] = None,
    against_rules: Annotated[
        Path | None, typer.Option(help="current rules (default: PAYMESH_FRAUD_RULES)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
) -> None:
    """Score a labelled history with a candidate model or rule set and with the current one:
    caught per attack, false positives, alerts per 1,000 payments and PR-AUC, side by side."""
    from paymesh.fraud.model import ModelError
    from paymesh.fraud.replay import read_records
    from paymesh.fraud.scorer import load_model
    from paymesh.fraud.training import assess_all, backtest, replay_history

    configured = Settings.from_env().fraud_model
    try:
        with open(history, encoding="utf-8") as lines:
            records = list(read_records(lines, "jsonl"))
        replays: dict[Path | None, Any] = {}
        reports = {}
        for name, model_spec, rules_path in (
            ("current", against_model or configured, against_rules),
            ("candidate", model or configured, rules),
        ):
            loaded = load_model(model_spec)
            ruleset = _rules(rules_path)
            if rules_path not in replays:  # the rules' scores feed the features: one replay each
                replays[rules_path] = replay_history(records, ruleset)
            replayed = replays[rules_path]
            report = backtest(replayed, assess_all(replayed, ruleset, loaded))
            report["engine"] = {
                "model": loaded.version if loaded else None,
                "rules": str(rules_path) if rules_path else "configured",
            }
            reports[name] = report
    except (TransactionError, RuleError, ModelError, OSError, ValueError) as exc:
        raise _fail(exc) from exc
    if as_json:
        typer.echo(json.dumps(reports, indent=2, default=str))
        return
    Console(width=160).print(_table(reports["current"], reports["candidate"]))


def _pct(x: float) -> str:
    return "-" if isinstance(x, float) and math.isnan(x) else f"{x:.2%}"


def _table(current: dict[str, Any], candidate: dict[str, Any]) -> Table:
    def engine(report: dict[str, Any]) -> str:
        return report["engine"]["model"] or "rules only"

    table = Table(title="fraud backtest (alert: score >= 70, block: score > 80)")
    table.add_column("")
    table.add_column(f"current ({engine(current)})", justify="right")
    table.add_column(f"candidate ({engine(candidate)})", justify="right")
    a, b = current["overall"], candidate["overall"]
    table.add_row("payments / fraud", f"{a['payments']:,} / {a['fraud']:,}", "")
    table.add_row("PR-AUC", f"{a['pr_auc']:.3f}", f"{b['pr_auc']:.3f}")
    table.add_row("fraud caught (alerted)", _pct(a["caught"]), _pct(b["caught"]))
    table.add_row(
        "legitimate alerted", _pct(a["false_positive_rate"]), _pct(b["false_positive_rate"])
    )
    table.add_row("legitimate blocked", _pct(a["legit_blocked"]), _pct(b["legit_blocked"]))
    table.add_row(
        "alerts per 1,000 payments", f"{a['alerts_per_1000']:.1f}", f"{b['alerts_per_1000']:.1f}"
    )
    for attack, f in current["attacks"].items():
        g = candidate["attacks"][attack]
        table.add_row(f"{attack}: caught", _pct(f["recall"]), _pct(g["recall"]))
        table.add_row(
            f"{attack}: episodes caught", _pct(f["episodes_caught"]), _pct(g["episodes_caught"])
        )
        if attack == "compromised_terminal":
            table.add_row(
                f"{attack}: caught after the feedback delay",
                _pct(f["recall_after_delay"]),
                _pct(g["recall_after_delay"]),
            )
    for group, f in current["lookalikes"].items():
        g = candidate["lookalikes"][group]
        table.add_row(f"{group}: alerted", _pct(f["alerted"]), _pct(g["alerted"]))
        table.add_row(f"{group}: blocked", _pct(f["blocked"]), _pct(g["blocked"]))
    return table


def register(fraud_app: typer.Typer) -> None:
    fraud_app.command("generate")(generate)
    fraud_app.command("train")(train)
    fraud_app.command("backtest")(backtest)
