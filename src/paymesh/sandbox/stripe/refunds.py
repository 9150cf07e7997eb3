"""`/v1/refunds`: refund a captured charge, wholly or in parts, never beyond it."""

from __future__ import annotations

from paymesh.sandbox.stripe.amounts import display_amount
from paymesh.sandbox.stripe.calls import Call, Execute, now
from paymesh.sandbox.stripe.errors import StripeError
from paymesh.sandbox.stripe.ids import new_id
from paymesh.sandbox.stripe.objects import Charge, ListPage, Refund
from paymesh.sandbox.stripe.params import Params, merge_metadata

__all__ = ["create", "list_all", "retrieve"]

_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
_CREATE = frozenset(
    {
        "payment_intent",
        "charge",
        "amount",
        "reason",
        "metadata",
        "instructions_email",
        "refund_application_fee",
        "reverse_transfer",
    }
)


def create(params: Params) -> Execute:
    params.only(_CREATE)
    intent_id = params.string("payment_intent")
    charge_id = params.string("charge")
    if intent_id is None and charge_id is None:
        raise StripeError.invalid_request(
            "One of the following params should be provided for this request: "
            "payment_intent or charge.",
            code="parameter_missing",
        )
    amount = params.integer("amount", minimum=1)
    reason = params.choice("reason", _REASONS)
    metadata = merge_metadata({}, params.metadata())

    def execute(call: Call) -> Refund:
        charge = _refundable_charge(call, intent_id, charge_id)
        unrefunded = charge.amount - charge.amount_refunded
        if unrefunded == 0:
            raise StripeError.invalid_request(
                f"Charge {charge.id} has already been refunded.", code="charge_already_refunded"
            )
        to_refund = unrefunded if amount is None else amount
        if to_refund > unrefunded:
            raise StripeError.invalid_request(
                f"Refund amount ({display_amount(to_refund, charge.currency)}) is greater than "
                f"unrefunded amount on charge ({display_amount(unrefunded, charge.currency)})",
                code="amount_too_large",
                param="amount",
            )
        charge.amount_refunded += to_refund
        charge.refunded = charge.amount_refunded == charge.amount
        refund = Refund(
            id=new_id("re"),
            amount=to_refund,
            balance_transaction=new_id("txn"),
            charge=charge.id,
            created=now(),
            currency=charge.currency,
            metadata=metadata,
            payment_intent=charge.payment_intent,
            reason=reason,
        )
        call.account.refunds.add(refund.id, refund)
        call.emit("charge.refunded", charge)
        return refund

    return execute


def _refundable_charge(call: Call, intent_id: str | None, charge_id: str | None) -> Charge:
    account = call.account
    if intent_id is not None:
        intent = account.payment_intents.require(intent_id, "payment_intent", status=400)
        charge = account.charges.get(intent.latest_charge)
        if intent.status != "succeeded" or charge is None:
            raise StripeError.invalid_request(
                f"This PaymentIntent ({intent.id}) does not have a successful charge to refund.",
                param="payment_intent",
            )
        if charge_id is not None and charge_id != charge.id:
            raise StripeError.invalid_request(
                f"Charge {charge_id} does not belong to PaymentIntent {intent.id}.",
                param="charge",
            )
    else:
        assert charge_id is not None
        charge = account.charges.require(charge_id, "charge", status=400)
        if charge.status != "succeeded" or not charge.captured:
            raise StripeError.invalid_request(
                f"Charge {charge.id} has not been captured; cancel its PaymentIntent instead.",
                param="charge",
            )
    if charge.disputed:
        raise StripeError.invalid_request(
            f"Charge {charge.id} has been charged back; cannot issue a refund.",
            code="charge_disputed",
        )
    return charge


def retrieve(params: Params) -> Execute:
    params.only(())
    refund_id = params.path_id()
    return lambda call: call.account.refunds.require(refund_id, "id")


def list_all(params: Params) -> Execute:
    params.only(("limit", "starting_after", "ending_before", "payment_intent", "charge", "created"))
    limit = params.limit()
    after = params.string("starting_after")
    before = params.string("ending_before")
    intent_id = params.string("payment_intent")
    charge_id = params.string("charge")
    created = params.created_filter()

    def matches(refund: Refund) -> bool:
        return (
            (intent_id is None or refund.payment_intent == intent_id)
            and (charge_id is None or refund.charge == charge_id)
            and (created is None or created(refund.created))
        )

    def execute(call: Call) -> ListPage:
        filtered = intent_id is not None or charge_id is not None or created is not None
        data, more = call.account.refunds.page(limit, after, before, matches if filtered else None)
        return ListPage(data=data, has_more=more, url="/v1/refunds")

    return execute
