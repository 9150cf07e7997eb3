"""Without the shared EventBridge corpus a developer's run skips its cases and says so in one
line; a CI run fails. Each case runs pytest on the conformance module in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE = "tests/unit/test_eventbridge_conformance.py"


def run_conformance(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PAYMESH_", "CI"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", MODULE, "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_without_the_corpus_a_plain_run_skips_its_cases_saying_how_many_and_why(
    tmp_path: Path,
) -> None:
    done = run_conformance(PAYMESH_CONFORMANCE_DIR=str(tmp_path / "absent"))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [
        line for line in done.stdout.splitlines() if line.startswith("EventBridge conformance:")
    ]
    assert lines == [
        f"EventBridge conformance: 827 cases (773 labelled pattern/event pairs, 54 invalid "
        f"patterns) not run: no corpus at {tmp_path / 'absent'}; CI fails without it "
        f"(CI=true or PAYMESH_REQUIRE_CONFORMANCE=1)"
    ]
    assert "3 skipped" in done.stdout


def test_without_the_corpus_a_ci_run_fails(tmp_path: Path) -> None:
    for env in ({"CI": "true"}, {"PAYMESH_REQUIRE_CONFORMANCE": "1"}):
        done = run_conformance(PAYMESH_CONFORMANCE_DIR=str(tmp_path / "absent"), **env)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "3 failed" in done.stdout
        assert "this run requires it" in done.stdout


def test_with_the_corpus_a_ci_run_counts_every_case(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "corpus.jsonl").write_text(
        '{"id": "c1", "pattern": {"a": [1]}, "event": {"a": 1}, "match": true, "source": "t"}\n'
        '{"id": "c2", "pattern": {"a": [1]}, "event": {"a": 2}, "match": false, "source": "t"}\n'
    )
    (corpus / "invalid.jsonl").write_text('{"pattern": {"a": 1}}\n')
    done = run_conformance(PAYMESH_CONFORMANCE_DIR=str(corpus), CI="true")
    assert (
        "EventBridge conformance: 2 labelled cases passed, 0 failed, 0 skipped; "
        "1 invalid patterns rejected, 0 failed"
    ) in done.stdout
    # A truncated corpus passes no CI run.
    assert done.returncode == 1 and "test_the_whole_corpus_was_found" in done.stdout
