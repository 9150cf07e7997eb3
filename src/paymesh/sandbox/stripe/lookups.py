"""Read-only endpoints: `/v1/charges/{id}`, `/v1/disputes/{id}` and `/v1/events`.

Events are served as the bytes recorded when they happened (see `events`),
so a listed event is byte-identical to the webhook that carried it.
"""

from __future__ import annotations

from paymesh.sandbox.stripe.accounts import StoredEvent
from paymesh.sandbox.stripe.calls import Call, Execute
from paymesh.sandbox.stripe.objects import ListPage
from paymesh.sandbox.stripe.params import Params

__all__ = ["list_events", "retrieve_charge", "retrieve_dispute", "retrieve_event"]


def retrieve_charge(params: Params) -> Execute:
    params.only(())
    charge_id = params.path_id()
    return lambda call: call.account.charges.require(charge_id, "id")


def retrieve_dispute(params: Params) -> Execute:
    params.only(())
    dispute_id = params.path_id()
    return lambda call: call.account.disputes.require(dispute_id, "dispute")


def retrieve_event(params: Params) -> Execute:
    params.only(())
    event_id = params.path_id()
    return lambda call: call.account.events.require(event_id, "id").body


def list_events(params: Params) -> Execute:
    params.only(
        ("limit", "starting_after", "ending_before", "type", "types", "created", "delivery_success")
    )
    limit = params.limit()
    after = params.string("starting_after")
    before = params.string("ending_before")
    wanted = _wanted_types(params)
    created = params.created_filter()

    def matches(event: StoredEvent) -> bool:
        return (wanted is None or _type_matches(event.type, wanted)) and (
            created is None or created(event.created)
        )

    def execute(call: Call) -> ListPage:
        filtered = wanted is not None or created is not None
        events, more = call.account.events.page(limit, after, before, matches if filtered else None)
        return ListPage(data=[event.body for event in events], has_more=more, url="/v1/events")

    return execute


def _wanted_types(params: Params) -> tuple[str, ...] | None:
    single = params.string("type")
    several = params.string_list("types")
    if single is None and not several:
        return None
    return tuple([single] if single else []) + tuple(several or ())


def _type_matches(event_type: str, wanted: tuple[str, ...]) -> bool:
    # Stripe allows one trailing wildcard: `type=payment_intent.*`.
    return any(
        event_type.startswith(pattern[:-1]) if pattern.endswith("*") else event_type == pattern
        for pattern in wanted
    )
