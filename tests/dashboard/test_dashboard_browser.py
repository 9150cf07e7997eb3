"""The dashboard in a real browser (Debian's chromium, driven by Playwright): every page and
every action, end to end against a real `paymesh serve`, checked through the API afterwards.

Order matters only within a test; each test signs in afresh (the `visit` fixture), and the
whole module shares one deployment seeded in conftest.py.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
from playwright.sync_api import Browser, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paymesh.fraud.model import FraudModel
from tests.dashboard.conftest import MERCHANT, Deployment, Visit, wait_for
from tests.support.live_server import live_server


def test_login_takes_a_key_in_a_form_and_keeps_it_out_of_every_url(
    browser: Browser, deployment: Deployment
) -> None:
    context = browser.new_context()
    page = context.new_page()
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    page.goto(deployment.base + "/dashboard/payments")
    expect(page).to_have_url(deployment.base + "/dashboard/login")  # not signed in: sent here

    page.fill("#key", "pmk_test_not_a_real_key")
    page.click("button[type=submit]")
    expect(page.locator("p.error")).to_contain_text("invalid API key")
    assert context.cookies() == []

    page.fill("#key", deployment.key)
    page.click("button[type=submit]")
    expect(page).to_have_url(deployment.base + "/dashboard")
    expect(page.locator("header .merchant")).to_have_text(MERCHANT)
    (cookie,) = context.cookies()
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (
        True,
        "Strict",
        "/dashboard",
    )
    assert not any(deployment.key in url for url in seen)
    assert deployment.key not in page.content()

    page.click("header .logout button")
    expect(page).to_have_url(deployment.base + "/dashboard/login")
    page.goto(deployment.base + "/dashboard")
    expect(page).to_have_url(deployment.base + "/dashboard/login")
    context.close()


def test_a_post_from_another_origin_is_refused(deployment: Deployment) -> None:
    with httpx.Client(base_url=deployment.base, cookies={"paymesh_dashboard": deployment.key}) as c:
        forged = c.post(
            "/dashboard/dead-letters/redrive", headers={"Origin": "https://evil.example"}
        )
        assert forged.status_code == 403
        assert len(c.get("/v1/dead-letters", headers=_auth(deployment)).json()["data"]) >= 1


def test_the_overview_charts_update_without_a_reload(visit: Visit, deployment: Deployment) -> None:
    page = visit.go("/dashboard")
    charts = page.locator("#charts")
    expect(page.locator("#charts canvas")).to_have_count(6)
    with deployment.http() as http:
        for _ in range(5):
            deployment.pay(http, 990, customer_id="cus_live")
    # Points arrive every 2 s; the same document keeps growing them (no navigation).
    expect(charts).to_have_attribute("data-points", re.compile(r"^([3-9]|\d\d+)$"), timeout=15_000)
    expect(page.locator('[data-figure="payments_per_second"]')).to_have_text(re.compile(r"^\d"))
    expect(page.locator('[data-figure="latency"]')).to_have_text(re.compile(r"^\d"))
    assert charts.get_attribute("data-source") == "/dashboard/live"
    visit.shoot("overview")


def test_payments_are_found_by_customer_status_psp_amount_date_and_id(
    visit: Visit, deployment: Deployment
) -> None:
    page = visit.go("/dashboard/payments")
    ids = deployment.ids

    def search(**fields: str) -> list[str]:
        page.goto(deployment.base + "/dashboard/payments")
        for name, value in fields.items():
            target = page.locator(f"form.search [name={name}]")
            if target.evaluate("e => e.tagName") == "SELECT":
                target.select_option(value)
            else:
                target.fill(value)
        # htmx swaps #results after the response has arrived: mark the old table so the rows
        # are read only from the one the search put in its place.
        page.locator("#results").evaluate("e => e.setAttribute('data-stale', '')")
        page.click("form.search button[type=submit]")
        expect(page.locator("#results:not([data-stale])")).to_have_count(1)
        return page.locator("#results tbody td:first-child a").all_inner_texts()

    assert sorted(search(customer="cus_bob")) == sorted([ids["adyen"], ids["paypal"]])
    assert search(customer="cus_bob", psp="paypal") == [ids["paypal"]]
    assert search(status="failed") == [ids["declined"]]
    assert search(status="requires_capture", amount_min="100000") == [ids["reject"]]
    assert search(amount_min="1250", amount_max="1250") == [ids["succeeded"]]
    assert search(id=ids["refunded"]) == [ids["refunded"]]
    assert search(created_from="2000-01-01", created_to="2000-01-02") == []
    page.goto(deployment.base + "/dashboard/payments?customer=cus_bob")
    expect(page.locator("#results tbody tr")).to_have_count(2)
    visit.shoot("payments")
    search(amount_min="twelve")
    expect(page.locator("#results .error")).to_contain_text("whole minor units")


def test_a_payments_page_shows_its_timeline_psp_and_fraud_reasons(
    visit: Visit, deployment: Deployment
) -> None:
    refunded = deployment.ids["refunded"]
    page = visit.go(f"/dashboard/payments/{refunded}")
    expect(page.locator("h1")).to_contain_text("30.00 USD")
    expect(page.locator("#summary")).to_contain_text("10.00 USD")  # refunded
    timeline = page.locator("#timeline .event-type").all_inner_texts()
    assert timeline[0] == "payment.initiated"
    assert {"payment.succeeded", "refund.succeeded"} <= set(timeline)
    expect(page.locator("#psp")).to_contain_text("stripe")
    expect(page.locator("#psp code").first).to_have_text(re.compile(r"^pi_"))
    expect(page.locator("#fraud .score")).to_contain_text("decision allow")
    # Scored by the packaged model: its version is on the page (the drift report's models).
    expect(page.locator("#fraud .score .model")).to_have_text(FraudModel.packaged().version)
    visit.shoot("payment")

    # A dispute only ever arrives by webhook: the change names the PSP's notification.
    disputed = deployment.ids["disputed"]
    with deployment.http() as http:
        events = http.get(f"/v1/payments/{disputed}/events").json()["data"]
    (dispute,) = [e for e in events if e["detail-type"] == "payment.dispute.created"]
    assert dispute["detail"]["psp_event_id"].startswith("evt_")
    assert all("psp_event_id" not in e["detail"] for e in events if e is not dispute)
    page = visit.go(f"/dashboard/payments/{disputed}")
    expect(page.locator("#webhooks tbody tr")).to_have_count(1)
    expect(page.locator("#webhooks tbody tr")).to_contain_text(dispute["detail"]["psp_event_id"])
    expect(page.locator("#webhooks tbody tr")).to_contain_text("payment.dispute.created")
    expect(page.locator("#timeline .via")).to_have_text(
        f"by stripe webhook {dispute['detail']['psp_event_id']}"
    )

    held = visit.go(f"/dashboard/payments/{deployment.ids['approve']}")
    expect(held.locator("#fraud .factors")).to_contain_text("large_order")
    expect(held.locator("#fraud")).to_contain_text("Review")

    visit.go("/dashboard/payments/pay_nope")
    expect(visit.page.locator("h1")).to_have_text("Not found")
    visit.errors.remove(f"404 {deployment.base}/dashboard/payments/pay_nope")


def test_reviews_are_approved_and_rejected_with_a_reason(
    visit: Visit, deployment: Deployment
) -> None:
    ids = deployment.ids
    page = visit.go("/dashboard/reviews")
    approve_row = page.locator("tr", has=page.locator(f"a:text-is('{ids['approve']}')"))
    reject_row = page.locator("tr", has=page.locator(f"a:text-is('{ids['reject']}')"))
    expect(approve_row).to_have_count(1)
    visit.shoot("reviews")

    approve_row.locator("input[name=note]").fill("known customer, called back")
    approve_row.locator("button", has_text="Approve").click()
    expect(page.locator("p.notice")).to_contain_text("approved: the payment is captured")
    reject_row.locator("input[name=note]").fill("card testing pattern")
    reject_row.locator("button", has_text="Reject").click()
    expect(page.locator("p.notice")).to_contain_text("rejected")
    expect(page.locator("#reviews tbody td.empty")).to_have_text("No open reviews.")

    with deployment.http() as http:
        approved = http.get(f"/v1/payments/{ids['approve']}").json()
        rejected = http.get(f"/v1/payments/{ids['reject']}").json()
        review = http.get(f"/v1/reviews/{approved['review']['id']}").json()
    assert (approved["status"], approved["amount_captured"]) == ("succeeded", 95_000)
    assert (rejected["status"], rejected["amount_captured"]) == ("canceled", 0)
    assert (review["status"], review["note"]) == ("approved", "known customer, called back")

    # The decided review is listed with its note; deciding it the other way is refused and
    # changes nothing.
    page.goto(deployment.base + "/dashboard/reviews?status=approved")
    expect(page.locator("#reviews")).to_contain_text("known customer, called back")
    with deployment.http() as http:
        again = http.post(f"/v1/reviews/{review['id']}/reject", json={"note": "changed mind"})
        assert again.status_code == 409, again.text
        kept = http.get(f"/v1/reviews/{review['id']}").json()
    assert (kept["status"], kept["note"]) == ("approved", "known customer, called back")


def test_dead_letters_are_inspected_and_redriven_one_and_all(
    visit: Visit, deployment: Deployment
) -> None:
    page = visit.go("/dashboard/dead-letters")
    rows = page.locator("#dead-letters tbody tr[id]")
    expect(rows).to_have_count(2)
    first = rows.first
    expect(first).to_contain_text("to-erp → erp")
    expect(first).to_contain_text("target unreachable")
    page.locator("details summary").first.click()
    expect(page.locator("details pre").first).to_contain_text('"detail-type": "payment.succeeded"')
    visit.shoot("dead-letters")

    received: list[bytes] = []

    async def hooks(request: Request) -> Response:
        received.append(await request.body())
        return Response(status_code=204)

    # The target comes back: redriven deliveries now arrive.
    erp = Starlette(routes=[Route("/hooks", hooks, methods=["POST"])])
    with live_server(erp, port=deployment.dead_port):
        first.locator("button", has_text="Redrive").click()
        expect(page.locator("p.notice")).to_contain_text("redriven")
        expect(page.locator("#dead-letters tbody tr[id]")).to_have_count(1)
        assert wait_for(lambda: len(received) == 1)
        page.locator("button", has_text="Redrive all").click()
        expect(page.locator("p.notice")).to_have_text("1 dead letters redriven")
        expect(page.locator("#dead-letters td.empty")).to_have_text("No dead letters.")
        assert wait_for(lambda: len(received) == 2)
    payments = {httpx.Response(200, content=b).json()["resources"][0] for b in received}
    assert payments == {deployment.ids["dead_1"], deployment.ids["dead_2"]}


def test_a_rule_is_tested_created_and_disabled(visit: Visit, deployment: Deployment) -> None:
    page = visit.go("/dashboard/rules")
    form = page.locator("#new-rule form")
    pattern = form.locator("textarea[name=event_pattern]")
    test = form.locator("button", has_text="Test against the sample")

    test.click()  # the sample pattern (amount >= 100000) against the sample (250000)
    expect(page.locator("#test-outcome")).to_have_text("Matches the sample event")
    pattern.fill('{"detail": {"amount": [{"numeric": [">", 300000]}]}}')
    test.click()
    expect(page.locator("#test-outcome")).to_have_text("Does not match the sample event")
    pattern.fill('{"detail": {"amount": [{"numeric": [">", "x"]}]}}')
    test.click()
    expect(page.locator("#test-outcome")).to_contain_text("Invalid")
    visit.shoot("rules")

    pattern.fill('{"detail-type": ["payment.failed"]}')
    form.locator("input[name=name]").fill("declines-to-ops")
    form.locator("input[name=target_type][value=builtin]").check()
    form.locator("select[name=builtin]").select_option("send_confirmation")
    form.locator("button[type=submit]").click()
    expect(page.locator("p.notice")).to_have_text("rule 'declines-to-ops' saved")
    row = page.locator("#rule-declines-to-ops")
    expect(row).to_contain_text("ENABLED")
    row.locator("button", has_text="Disable").click()
    expect(page.locator("#rule-declines-to-ops")).to_contain_text("DISABLED")

    with deployment.http() as http:
        rules = {r["name"]: r for r in http.get("/v1/rules").json()["data"]}
    assert rules["declines-to-ops"]["state"] == "DISABLED"
    assert rules["declines-to-ops"]["event_pattern"] == {"detail-type": ["payment.failed"]}
    assert rules["declines-to-ops"]["targets"][0]["name"] == "send_confirmation"

    # Bad input is refused with the API's message, and nothing is saved.
    pattern.fill("{not json")
    form.locator("input[name=name]").fill("broken")
    form.locator("button[type=submit]").click()
    expect(page.locator("p.error")).to_contain_text("event_pattern is not valid JSON")
    with deployment.http() as http:
        assert "broken" not in {r["name"] for r in http.get("/v1/rules").json()["data"]}


def test_routing_shows_the_table_and_each_psps_circuit(
    visit: Visit, deployment: Deployment
) -> None:
    with deployment.http() as http:
        table = {
            "routes": [{"name": "euro", "currency": ["eur"], "connectors": ["adyen"]}],
            "default": ["stripe", "paypal"],
        }
        assert http.put("/v1/routing", json=table).status_code == 200
    page = visit.go("/dashboard/routing")
    for psp in ("stripe", "adyen", "paypal"):
        expect(page.locator("#circuits tr", has_text=psp)).to_contain_text("closed")
    expect(page.locator("#table")).to_contain_text("stripe → paypal")
    expect(page.locator("#table tbody")).to_contain_text("euro")
    expect(page.locator("#table tbody")).to_contain_text("currency in eur")
    visit.shoot("routing")


def _auth(d: Deployment) -> dict[str, str]:
    return {"Authorization": f"Bearer {d.key}"}


def test_the_money_page_shows_the_balance_the_books_and_the_movements(
    visit: Visit, deployment: Deployment
) -> None:
    with deployment.http() as http:
        api_balance = http.get("/v1/balance").json()
        moves = http.get("/v1/balance_transactions", params={"limit": 100}).json()["data"]
    page = visit.go("/dashboard/money")
    (usd,) = [b for b in api_balance["pending"] if b["currency"] == "usd"]
    pending = f"{usd['amount'] / 100:.2f} USD"
    expect(page.locator("#balance tbody tr").first).to_contain_text(pending)
    expect(page.locator("#accounts tr.total")).to_contain_text("0.00 USD")
    expect(page.locator("#accounts")).to_contain_text("psp_fees")
    shown = page.locator("#movements tbody tr")
    expect(shown).to_have_count(min(len(moves), 50))
    expect(shown.first).to_contain_text(moves[0]["type"])
    visit.shoot("money")


def test_a_day_is_reconciled_now_and_its_exceptions_shown(
    visit: Visit, deployment: Deployment
) -> None:
    page = visit.go("/dashboard/reconciliation")
    today = datetime.now(UTC).date().isoformat()
    page.locator("select[name=psp]").select_option("adyen")
    page.locator("input[name=date]").fill(today)
    page.locator("button", has_text="Reconcile now").click()
    expect(page.locator("p.notice")).to_contain_text(f"adyen {today}:")
    row = page.locator("#results tbody tr", has_text="adyen")
    # Day, PSP, report lines, items, reconciled, rate, exceptions: the seeded Adyen payment
    # (captured today) and the day's payout, both matched.
    cells = row.locator("td").all_inner_texts()
    assert cells[:7] == [today, "adyen", "2", "2", "2", "100.00 %", "0 / 0"], cells
    # The seeded Adyen payment settled today: the report has it, the ledger has it.
    expect(page.locator("#exceptions h2")).to_have_text(f"adyen {today}: exceptions")
    visit.shoot("reconciliation")
    # A day with no payments at all: nothing to match, nothing wrong.
    empty = visit.go("/dashboard/reconciliation")
    empty.locator("input[name=date]").fill("2001-02-03")
    empty.locator("select[name=psp]").select_option("stripe")
    empty.locator("button", has_text="Reconcile now").click()
    notice = empty.locator("p.notice")
    expect(notice).to_contain_text("stripe 2001-02-03: 0 items, 0 exceptions open")
    expect(empty.locator("#exceptions td.empty")).to_have_text("None: every line matched.")
