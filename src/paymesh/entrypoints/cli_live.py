"""`paymesh listen` and `paymesh trigger`: watch and provoke a running server, as the Stripe
CLI does.

Both talk to the server's API with a merchant's key, not to its store: the key scopes them to
one merchant as every API client is scoped, they work whatever the store is (SQLite owned by
one process, PostgreSQL, DynamoDB) with no database credentials on the operator's laptop, and
what they show is what an integration would see. `listen` polls `GET /v1/events` (newest
first) and prints what is new, oldest first, one JSON line per event; a pattern filters them
with the same matcher the rules use. `trigger` makes the real objects (a sandbox payment that
succeeds, fails, is captured, cancelled or refunded), so the events that flow are the real
ones, through the real rules and deliveries; it then prints the payment's timeline.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

ApiBase = Annotated[
    str,
    typer.Option("--api", envvar="PAYMESH_API_BASE", help="the running server"),
]
ApiKey = Annotated[
    str | None,
    typer.Option("--api-key", envvar="PAYMESH_API_KEY", help="a merchant's API key"),
]
DEFAULT_API = "http://127.0.0.1:8080"

#: A page of events, newest first, and whether older ones follow.
Page = tuple[list[dict[str, Any]], bool]


class EventTail:
    """The events that appeared since the last poll, oldest first.

    `fetch(starting_after)` returns a page of the event log newest first. A poll reads pages
    until it meets an event it has already seen (or the log's start), so a burst longer than
    a page is not cut. The first poll only marks where "now" is, unless `replay`.
    """

    def __init__(self, fetch: Callable[[str | None], Page], replay: bool = False) -> None:
        self._fetch = fetch
        self._seen: set[str] = set()
        self._order: deque[str] = deque()
        self._started = replay

    def _remember(self, event_id: str) -> None:
        self._seen.add(event_id)
        self._order.append(event_id)
        if len(self._order) > 10_000:  # a long tail must not grow for ever
            self._seen.discard(self._order.popleft())

    def poll(self) -> list[dict[str, Any]]:
        new: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page, has_more = self._fetch(cursor)
            fresh = [e for e in page if e["id"] not in self._seen]
            new.extend(fresh)
            if len(fresh) < len(page) or not has_more or not page:
                break
            if not self._started:  # the first poll: one page marks "now"
                break
            cursor = page[-1]["id"]
        new.reverse()
        for event in new:
            self._remember(event["id"])
        if not self._started:
            self._started = True
            return []
        return new


def _key(api_key: str | None) -> str:
    key = api_key
    if not key:
        typer.echo("error: give --api-key or PAYMESH_API_KEY (see `paymesh keys create`)", err=True)
        raise typer.Exit(2)
    return key


def _client(api: str, api_key: str | None) -> Any:
    import httpx

    return httpx.Client(
        base_url=api.rstrip("/"), timeout=30, headers={"Authorization": f"Bearer {_key(api_key)}"}
    )


def _answer(response: Any) -> dict[str, Any]:
    """The body of a 2xx; one line on stderr and exit 1 for anything else."""
    body: dict[str, Any] = response.json() if response.content else {}
    if response.status_code >= 400 and response.status_code != 402:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        message = error.get("message") or response.text[:200]
        typer.echo(f"error: {response.status_code} from the server: {message}", err=True)
        raise typer.Exit(1)
    return body


def _pattern(text: str | None) -> Any:
    if text is None:
        return None
    import msgspec

    from paymesh.rules import InvalidEventPattern, compile_pattern

    try:
        raw = Path(text[1:]).read_bytes() if text.startswith("@") else text.encode()
        return compile_pattern(msgspec.json.decode(raw))
    except (InvalidEventPattern, ValueError, OSError, TypeError) as exc:
        typer.echo(f"error: invalid pattern: {exc}", err=True)
        raise typer.Exit(2) from exc


def listen(
    pattern: Annotated[
        str | None, typer.Option(help="an EventBridge event pattern: JSON or @FILE")
    ] = None,
    api: ApiBase = DEFAULT_API,
    api_key: ApiKey = None,
    interval: Annotated[float, typer.Option(help="seconds between polls")] = 1.0,
    replay: Annotated[
        bool, typer.Option("--replay", help="print the newest page of past events first")
    ] = False,
    count: Annotated[int | None, typer.Option(help="stop after this many matching events")] = None,
) -> None:
    """Tail the merchant's events live, one JSON line each (oldest first), filtered by
    PATTERN with the rules' own matcher. Ctrl-C stops."""
    import msgspec

    compiled = _pattern(pattern)
    printed = 0
    with _client(api, api_key) as http:

        def fetch(after: str | None) -> Page:
            params: dict[str, str | int] = {"limit": 100}
            if after:
                params["starting_after"] = after
            body = _answer(http.get("/v1/events", params=params))
            return list(body["data"]), bool(body["has_more"])

        tail = EventTail(fetch, replay=replay)
        typer.echo(f"listening to {api} (Ctrl-C stops)", err=True)
        try:
            while True:
                for event in tail.poll():
                    if compiled is not None and not compiled.matches(event):
                        continue
                    sys.stdout.write(msgspec.json.encode(event).decode() + "\n")
                    sys.stdout.flush()
                    printed += 1
                    if count is not None and printed >= count:
                        return
                time.sleep(interval)
        except KeyboardInterrupt:
            return


#: What `trigger` can fire: the calls that make it happen for real, in order.
TRIGGERS: dict[str, tuple[str, str, str]] = {
    # event: (capture_method, payment_method, then)
    "payment.succeeded": ("automatic", "pm_card_visa", ""),
    "payment.failed": ("automatic", "pm_card_chargeDeclined", ""),
    "payment.requires_capture": ("manual", "pm_card_visa", ""),
    "payment.captured": ("manual", "pm_card_visa", "capture"),
    "payment.canceled": ("manual", "pm_card_visa", "cancel"),
    "refund.succeeded": ("automatic", "pm_card_visa", "refunds"),
}


def trigger(
    event: Annotated[str, typer.Argument(help=", ".join(TRIGGERS))],
    api: ApiBase = DEFAULT_API,
    api_key: ApiKey = None,
    amount: Annotated[int, typer.Option(help="minor units")] = 2000,
    currency: Annotated[str, typer.Option()] = "usd",
) -> None:
    """Make EVENT happen on a running sandbox server: a real sandbox payment (test card
    tokens, which a live PSP refuses) that succeeds, fails, is captured, cancelled or
    refunded; its events go through the rules like any other. Prints its timeline."""
    if event not in TRIGGERS:
        typer.echo(f"error: cannot trigger {event!r}; one of: {', '.join(TRIGGERS)}", err=True)
        raise typer.Exit(2)
    capture_method, method, then = TRIGGERS[event]
    with _client(api, api_key) as http:

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            # An idempotency key: a retried trigger must not make a second payment.
            headers = {"Idempotency-Key": f"trigger-{uuid.uuid4()}"}
            return _answer(http.post(path, json=body, headers=headers))

        created = post(
            "/v1/payments",
            {
                "amount": amount,
                "currency": currency,
                "customer_id": "cus_paymesh_trigger",
                "payment_method": method,
                "capture_method": capture_method,
                "description": f"paymesh trigger {event}",
            },
        )
        payment = created.get("error", {}).get("payment", created)
        pid = payment["id"]
        if then:
            post(f"/v1/payments/{pid}/{then}", {})
        typer.echo(f"triggered {event}: payment {pid}", err=True)
        for item in _timeline(http, pid):
            typer.echo(f"{item['time']}  {item['detail-type']:<28} {item['id']}")


def _timeline(http: Any, payment_id: str) -> Iterator[dict[str, Any]]:
    body = _answer(http.get(f"/v1/payments/{payment_id}/events"))
    yield from body["data"]


def live_commands(app: typer.Typer) -> None:
    app.command()(listen)
    app.command()(trigger)
