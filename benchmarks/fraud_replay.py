"""Fraud replay throughput and detection quality on a seeded, labelled synthetic stream.

The generator's transactions (`paymesh.fraud.generator`: five attacks, four
legitimate look-alikes) are written as JSON Lines, with the feedback a live
stream would carry merged in time order: disputes of the approved attack
payments (and a few friendly-fraud ones) 2 to 20 days later. They are replayed
on one core through `paymesh.fraud.replay` (parsing included), each transaction
scored before the next line is read; `--model-process` scores the model's batches
in a second process, as `paymesh fraud replay --model-process` does (its start is
inside each pass's time). A compromised terminal is only visible
through those disputes; `--no-disputes` shows what is caught without them.
With `--live`, transactions carry no `approved`: approvals and declines arrive
as feedback 0.3-2 s later, as when the score is taken before the PSP answers.

The replay runs `--repeat` times (3), each with a fresh engine, and the best and
median rates are printed: a shared machine's noise only ever slows a pass down.
The scores are the same in every pass (checked). Printed: the replay rate; per
attack type precision, recall and PR-AUC (against
the legitimate payments), share blocked, episodes caught and attempts before
the first alert; per look-alike and for all legitimate payments the shares
alerted (score >= 70, the `fraud.alert` threshold) and blocked (score > 80).

    .venv/bin/python benchmarks/fraud_replay.py                 # 50,000 transactions, seed 1
    .venv/bin/python benchmarks/fraud_replay.py --seed 2 --live --json fraud.json
    .venv/bin/python benchmarks/fraud_replay.py --stages     # where a transaction's time goes
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from paymesh.fraud.evaluation import evaluate
from paymesh.fraud.generator import generate_episodes, outcomes, replay_records
from paymesh.fraud.replay import read_records, replay
from paymesh.fraud.scorer import FraudEngine, load_model
from paymesh.fraud.transactions import parse_outcome, parse_transaction


def _pct(x: float) -> str:
    return "     -" if x != x else f"{x:6.1%}"  # NaN: nothing to divide


def _num(x: float) -> str:
    return "    -" if x != x else f"{x:5.2f}"


def print_report(report: dict[str, Any]) -> None:
    print(
        f"{'attack':22} {'txns':>5} {'precis.':>7} {'recall':>7} {'PR-AUC':>7} {'blocked':>7}"
        f" {'episodes':>8} {'caught':>7} {'before 1st alert: mean':>22} {'median':>6}"
        f" {'after delay':>11}"
    )
    for attack, f in report["attacks"].items():
        print(
            f"{attack:22} {f['transactions']:5d} {_pct(f['precision']):>7} {_pct(f['recall']):>7}"
            f" {_num(f['pr_auc']):>7} {_pct(f['blocked']):>7} {f['episodes']:8d}"
            f" {_pct(f['episodes_caught']):>7} {_num(f['attempts_before_alert_mean']):>22}"
            f" {_num(f['attempts_before_alert_median']):>6}"
            f" {_pct(f.get('recall_after_delay', float('nan'))):>11}"
        )
    f = report["all_attacks"]
    print(
        f"{'all attacks':22} {f['transactions']:5d} {_pct(f['precision']):>7}"
        f" {_pct(f['recall']):>7} {_num(f['pr_auc']):>7}"
    )
    print(f"alerts per 1,000 payments: {report['alerts_per_1000']:.1f}")
    print(f"\n{'legitimate':22} {'txns':>7} {'alerted':>8} {'blocked':>8}")
    rows = {
        **report["lookalikes"],
        "legit": report["legit"],
        "all legitimate": report["legitimate"],
    }
    for label, r in rows.items():
        print(f"{label:22} {r['transactions']:7d} {r['alerted']:8.2%} {r['blocked']:8.2%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=50_000, help="transactions (default 50,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--model", default="packaged", help='the learned model: "packaged", "none" or a file'
    )
    parser.add_argument("--live", action="store_true", help="approvals/declines as feedback")
    parser.add_argument("--no-disputes", action="store_true", help="feed no disputes")
    parser.add_argument("--repeat", type=int, default=3, help="replay passes (default 3)")
    parser.add_argument(
        "--model-process",
        action="store_true",
        help="score the model's half in a second process (paymesh fraud replay --model-process)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write all figures as JSON")
    parser.add_argument(
        "--scores",
        type=Path,
        metavar="FILE",
        help="write each transaction's score, decision and factors, a line each (to compare runs)",
    )
    parser.add_argument(
        "--stages",
        action="store_true",
        help="also time the replay's stages, each on top of the last: where the time goes",
    )
    args = parser.parse_args()

    stream, episode_of = generate_episodes(args.n, args.seed)
    feedback = outcomes(stream, args.seed, live=args.live)
    if args.no_disputes:
        feedback = [event for event in feedback if event[2] != "disputed"]
    lines = [json.dumps(record) for record in replay_records(stream, feedback, args.live)]
    # The pre-generated input is not part of a scorer's heap: keep the cyclic GC from
    # rescanning it (a service holds no such list; its own state is still collected).
    gc.freeze()
    rates: list[float] = []
    first: tuple[list[int], list[str]] | None = None
    results: list[dict[str, Any]] = []
    for _ in range(max(1, args.repeat)):
        scores: list[int] = []
        decisions: list[str] = []
        started = time.perf_counter()
        engine = FraudEngine(model=load_model(args.model))  # a fresh engine each pass
        for result in replay(lines, "jsonl", engine, args.model_process):
            scores.append(result["risk_score"])
            decisions.append(result["decision"])
            if args.scores and first is None:
                results.append(result)
        rates.append(len(scores) / (time.perf_counter() - started))
        if first is None:
            first = scores, decisions
        elif first != (scores, decisions):
            raise SystemExit("replay is not deterministic: passes scored differently")
        gc.collect()
    assert first is not None
    scores, decisions = first
    rate = max(rates)
    cores = "two cores (the model in its own process)" if args.model_process else "one core"
    print(
        f"seed {args.seed}: {len(scores):,} transactions + {len(feedback):,} feedback lines;"
        f" replay on {cores},"
        f" parsing and feedback included: {rate:,.0f} transactions/s"
        f" (best of {len(rates)}; median {statistics.median(rates):,.0f})\n"
    )
    if args.stages:
        print_stages(lines, args.model, args.repeat)
    labels = [label for _, label in stream]
    episodes = [episode_of.get(txn.transaction_id, "") for txn, _ in stream]
    times = [txn.timestamp for txn, _ in stream]
    report = evaluate(labels, episodes, scores, decisions, timestamps=times)
    print_report(report)
    if args.scores:
        args.scores.write_text("".join(json.dumps(result) + "\n" for result in results))
    if args.json:
        figures = {
            "n": len(scores),
            "seed": args.seed,
            "live": args.live,
            "disputes": not args.no_disputes,
            "feedback_lines": len(feedback),
            "transactions_per_second": rate,
            "transactions_per_second_passes": rates,
            "model_process": args.model_process,
            # paymesh's modules this run imported as compiled extensions (mypyc), if any
            "compiled_modules": sorted(
                name
                for name, module in sys.modules.items()
                if name.startswith("paymesh.")
                and str(getattr(module, "__file__", "")).endswith(".so")
            ),
            **report,
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


def _decoded(lines: list[str]) -> None:
    for _ in read_records(lines, "jsonl"):
        pass


def _parsed(lines: list[str]) -> None:
    for record in read_records(lines, "jsonl"):
        if record.get("outcome"):
            parse_outcome(record)
        else:
            parse_transaction(record)


def _learned(lines: list[str]) -> None:
    engine = FraudEngine()
    for record in read_records(lines, "jsonl"):
        if record.get("outcome"):
            engine.feedback(*parse_outcome(record))
            continue
        txn = parse_transaction(record)
        engine.store.features(txn)
        engine.store.observe(txn, 0)


def _ruled(lines: list[str]) -> None:
    for _ in replay(lines, "jsonl", FraudEngine(model=None)):  # the rules alone
        pass


def print_stages(lines: list[str], model: str, repeat: int) -> None:
    """Each stage on top of the ones before it, best of `repeat`, per transaction: what the
    replay's time is made of, against the 10 µs a transaction that 100,000/s leaves."""
    transactions = sum(1 for line in lines if '"outcome"' not in line)

    def full(lines: list[str]) -> None:
        for _ in replay(lines, "jsonl", FraudEngine(model=load_model(model))):
            pass

    stages = [
        ("JSON decoding (the input lines)", _decoded),
        ("+ checking each record into a Transaction", _parsed),
        ("+ features and what the engine learns", _learned),
        ("+ the rules", _ruled),
        (f"+ the model ({model}): the whole replay", full),
    ]
    print(f"{'stage':48} {'µs/txn':>7} {'its own':>8} {'txn/s':>9}")
    before = 0.0
    for name, run in stages:
        best = float("inf")
        for _ in range(max(1, repeat)):
            started = time.perf_counter()
            run(lines)
            best = min(best, time.perf_counter() - started)
            gc.collect()
        each = best / transactions * 1e6
        print(f"{name:48} {each:7.1f} {each - before:8.1f} {transactions / best:9,.0f}")
        before = each
    print(f"{'(100,000 transactions/s leaves)':48} {10.0:7.1f}\n")


if __name__ == "__main__":
    main()
