"""The import contracts (`.importlinter`, run by `make lint`) hold on this tree, and they bite:
a copy of the package with one forbidden import added breaks the contract that forbids it,
and `lint-imports` names the contract and the offending import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".importlinter"
LAYERS = "Layers: each imports only the layers below it"
DOMAIN = "The domain imports no I/O and no third-party framework"
SERVICE = "The service imports no HTTP, codec, database, messaging or CLI library"
EDGES = "Adapters and connectors import no service internals"


def lint_imports(src: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` over the `paymesh` package found in `src` (ahead of the installed one)."""
    env = {**os.environ, "PYTHONPATH": str(src), "COLUMNS": "250", "NO_COLOR": "1"}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command; "
            "sys.exit(lint_imports_command())",
            "--config",
            str(CONFIG),
            "--no-cache",
        ],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_this_tree_keeps_every_contract() -> None:
    run = lint_imports(ROOT / "src")
    assert run.returncode == 0, run.stdout + run.stderr
    for name in (LAYERS, DOMAIN, SERVICE, EDGES):
        assert f"{name} KEPT" in run.stdout
    assert "0 broken" in run.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract", "reported"),
    [
        # The service reaching an adapter (the test the issue asks for).
        (
            "service/ids.py",
            "import paymesh.adapters.sqlite",
            LAYERS,
            "paymesh.service.ids -> paymesh.adapters.sqlite",
        ),
        ("service/ids.py", "import msgspec", SERVICE, "paymesh.service.ids -> msgspec"),
        ("domain/money.py", "import sqlite3", DOMAIN, "paymesh.domain.money -> sqlite3"),
        (
            "domain/money.py",
            "import starlette.responses",
            DOMAIN,
            "paymesh.domain.money -> starlette",
        ),
        (
            "bootstrap.py",
            "import paymesh.entrypoints.http.app",
            LAYERS,
            "paymesh.bootstrap -> paymesh.entrypoints.http.app",
        ),
        (
            "ports/fraud_feed.py",
            "import paymesh.fraud.transactions",
            LAYERS,
            "paymesh.ports.fraud_feed -> paymesh.fraud.transactions",
        ),
        (
            "adapters/nats/fraud_feed.py",
            "import paymesh.fraud.scorer",
            EDGES,
            "paymesh.adapters.nats.fraud_feed -> paymesh.fraud.scorer",
        ),
        (
            "connectors/__init__.py",
            "import paymesh.service.ids",
            EDGES,
            "paymesh.connectors -> paymesh.service.ids",
        ),
        # Only a PSP's registry entry may name its sandbox; a connector must not lean on one.
        (
            "connectors/__init__.py",
            "import paymesh.sandbox.cards",
            LAYERS,
            "paymesh.connectors -> paymesh.sandbox.cards",
        ),
        (
            "sandbox/__init__.py",
            "import paymesh.connectors",
            LAYERS,
            "paymesh.sandbox -> paymesh.connectors",
        ),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, module: str, line: str, contract: str, reported: str
) -> None:
    copy = tmp_path / "paymesh"
    shutil.copytree(
        ROOT / "src" / "paymesh", copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    target = copy / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")

    run = lint_imports(tmp_path)

    assert run.returncode == 1, run.stdout + run.stderr
    assert f"{contract} BROKEN" in run.stdout, run.stdout
    assert reported in run.stdout, run.stdout
