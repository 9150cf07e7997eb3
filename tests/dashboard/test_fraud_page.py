"""The Fraud page over plain HTTP, on a real `paymesh serve` with the merchant's payments of
today (tests/dashboard/conftest.py): the day is listed with the share of payments alerted, as
the API's own scores give it, and the chart gets the same figures."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime

import httpx

from paymesh.fraud.drift import ALERT
from tests.dashboard.conftest import Deployment


def _signed_in(deployment: Deployment) -> httpx.Client:
    return httpx.Client(
        base_url=deployment.base, timeout=30, cookies={"paymesh_dashboard": deployment.key}
    )


def test_the_fraud_page_lists_today_with_its_alert_rate(deployment: Deployment) -> None:
    with deployment.http() as api:
        payments = api.get("/v1/payments", params={"limit": 100}).json()["data"]
    scores = [p["fraud"]["score"] for p in payments if p["fraud"] is not None]
    alerted = sum(1 for s in scores if s >= ALERT) / len(scores)
    assert 0 < alerted < 1  # the seeded big orders are alerted, the rest are not
    today = datetime.now(UTC).date().isoformat()

    with _signed_in(deployment) as browser:
        page = browser.get("/dashboard/fraud")
    assert page.status_code == 200
    assert 'href="/dashboard/fraud" class="current"' in page.text  # in the nav, as this page
    rows = re.findall(r"<tr>\s*<td>(\d{4}-\d\d-\d\d)</td>(.*?)</tr>", page.text, re.S)
    assert [day for day, _ in rows] == [today]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", rows[0][1], re.S)
    assert cells[0] == str(len(scores))  # payments
    assert cells[5] == f"{alerted * 100:.1f} %"  # alerted
    chart = json.loads(html.unescape(re.search(r"data-series='([^']*)'", page.text)[1]))  # type: ignore[index]
    assert chart["alerted"] == [round(alerted * 100, 2)]


def test_the_fraud_page_needs_a_signed_in_merchant(deployment: Deployment) -> None:
    with httpx.Client(base_url=deployment.base, timeout=30) as anonymous:
        answer = anonymous.get("/dashboard/fraud")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard/login"


def test_the_chart_script_is_served_from_the_dashboard(deployment: Deployment) -> None:
    with _signed_in(deployment) as browser:
        page = browser.get("/dashboard/fraud?days=3").text
        script = re.search(r'<script src="([^"]*fraud\.js)"', page)
        assert script is not None
        assert browser.get(script[1]).status_code == 200
