"""`paymesh fraud generate | train | backtest | replay`, run as an operator runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from paymesh.fraud.model import FraudModel


def paymesh(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paymesh", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": "", **env},
    )


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fraud") / "history.jsonl"
    made = paymesh("fraud", "generate", "--payments", "20000", "--seed", "5", "--out", str(path))
    assert made.returncode == 0, made.stderr
    assert "20,000 payments" in made.stdout
    return path


def test_a_model_trained_from_a_history_beats_the_rules_on_it_in_a_backtest(
    history: Path, tmp_path: Path
) -> None:
    model_file = tmp_path / "candidate.json"
    trained = paymesh("fraud", "train", str(history), "--out", str(model_file))
    assert trained.returncode == 0, trained.stderr
    model = FraudModel.load(model_file)
    assert model.version in trained.stdout
    done = paymesh(
        "fraud", "backtest", str(history), "--model", str(model_file), "--against-model", "none",
        "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    current, candidate = report["current"], report["candidate"]
    assert current["engine"]["model"] is None and candidate["engine"]["model"] == model.version
    assert current["overall"]["payments"] == candidate["overall"]["payments"] == 20_000
    assert candidate["overall"]["pr_auc"] > current["overall"]["pr_auc"]
    assert set(candidate["attacks"]) == {
        "card_testing",
        "card_enumeration",
        "account_takeover",
        "leaked_card",
        "compromised_terminal",
    }
    table = paymesh("fraud", "backtest", str(history), "--against-model", "none")
    assert table.returncode == 0, table.stderr
    assert "PR-AUC" in table.stdout and "leaked_card: caught" in table.stdout


def test_replay_scores_with_the_configured_model(history: Path, tmp_path: Path) -> None:
    lines = history.read_text().splitlines()[:300]
    short = tmp_path / "short.jsonl"
    short.write_text("\n".join(lines) + "\n")
    packaged = paymesh("fraud", "replay", str(short))
    rules = paymesh("fraud", "replay", str(short), PAYMESH_FRAUD_MODEL="none")
    assert packaged.returncode == rules.returncode == 0, packaged.stderr + rules.stderr
    with_model = [json.loads(line) for line in packaged.stdout.splitlines()]
    alone = [json.loads(line) for line in rules.stdout.splitlines()]
    assert len(with_model) == len(alone) == sum(1 for line in lines if '"outcome"' not in line)
    assert [r["risk_score"] for r in with_model] != [r["risk_score"] for r in alone]
    # The model in a process of its own: the same lines, byte for byte.
    beside = paymesh("fraud", "replay", str(short), "--model-process")
    assert beside.returncode == 0, beside.stderr
    assert beside.stdout == packaged.stdout


def test_a_history_that_is_not_one_is_refused_with_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"transaction_id": "t1", "amount": 100}\n')
    failed = paymesh("fraud", "train", str(bad), "--out", str(tmp_path / "m.json"))
    assert failed.returncode == 2 and "record 1" in failed.stderr and "timestamp" in failed.stderr
    assert not (tmp_path / "m.json").exists()
    broken = tmp_path / "broken-model.json"
    broken.write_text("{}")
    refused = paymesh("fraud", "backtest", str(bad), "--model", str(broken))
    assert refused.returncode == 2 and "error:" in refused.stderr


def test_without_a_model_a_server_imports_no_lightgbm_numpy_or_scipy() -> None:
    # A Lambda layer or slim image without them can run the rules alone.
    probe = (
        "import sys; from paymesh.fraud.scorer import load_model;"
        " import paymesh.bootstrap, paymesh.entrypoints.http.asgi, paymesh.entrypoints.cli;"
        " assert load_model('none') is None;"
        " print(sorted(m for m in ('lightgbm', 'numpy', 'scipy') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
