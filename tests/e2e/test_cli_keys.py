"""`paymesh keys create | list | revoke` as an operator runs them, beside a running server."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from paymesh.config import Settings
from paymesh.entrypoints.http.asgi import build_app
from tests.support.live_server import free_port, live_server


def paymesh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paymesh", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": ""},
    )


def status(base: str, secret: str) -> httpx.Response:
    return httpx.get(
        f"{base}/v1/payments",
        params={"limit": 1},
        timeout=10,
        headers={"Authorization": f"Bearer {secret}"},
    )


def test_keys_are_listed_without_secrets_and_a_revoked_one_is_refused_within_2_s(
    tmp_path: Path,
) -> None:
    data = ("--data-dir", str(tmp_path))
    created = [paymesh("keys", "create", "--merchant", m, *data) for m in ("shop", "other")]
    assert [c.returncode for c in created] == [0, 0], [c.stderr for c in created]
    revoked, kept = (c.stdout.strip().splitlines()[-1] for c in created)
    assert revoked.startswith("pmk_") and kept.startswith("pmk_")

    listed = paymesh("keys", "list", *data)
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if "pmk_" in line]
    assert len(rows) == 2
    assert revoked[:10] in rows[0] and "shop" in rows[0]
    assert rows[0].count(" UTC") == 1, rows[0]  # created, not revoked
    assert kept[:10] in rows[1] and "other" in rows[1]
    for secret in (revoked, kept):  # nothing of a secret beyond its prefix
        assert secret[10:16] not in listed.stdout + listed.stderr
    only = paymesh("keys", "list", "--merchant", "other", *data)
    assert kept[:10] in only.stdout and revoked[:10] not in only.stdout

    port = free_port()
    settings = Settings.from_env(data_dir=tmp_path, port=port, rate_limit=0.0)
    with live_server(build_app(settings), port) as base:
        # Both work, and the server now holds both in its cache.
        assert [status(base, s).status_code for s in (revoked, kept)] == [200, 200]

        done = paymesh("keys", "revoke", revoked[:10], *data)
        assert done.returncode == 0, done.stderr
        assert f"revoked {revoked[:10]} of merchant 'shop'" in done.stdout
        since = time.monotonic()
        while (answer := status(base, revoked)).status_code == 200:
            assert time.monotonic() - since < 2.0, "the revoked key still works after 2 s"
            time.sleep(0.05)
        assert answer.status_code == 401
        assert answer.json()["error"]["type"] == "authentication_error"
        assert answer.json()["error"]["message"] == "invalid API key"
        # Refused at every look until past any cache (1.2 s), and the other key still works.
        until = time.monotonic() + 1.2
        while time.monotonic() < until:
            assert status(base, revoked).status_code == 401
            time.sleep(0.1)
        assert status(base, revoked).status_code == 401
        assert status(base, kept).status_code == 200

    after = paymesh("keys", "list", *data)
    row = next(line for line in after.stdout.splitlines() if revoked[:10] in line)
    assert row.count(" UTC") == 2, row  # created, and now revoked
    again = paymesh("keys", "revoke", revoked[:10], *data)
    assert again.returncode == 0 and "already revoked" in again.stdout
    unknown = paymesh("keys", "revoke", "pmk_nope00", *data)
    assert unknown.returncode == 1 and "no API key pmk_nope00" in unknown.stderr
