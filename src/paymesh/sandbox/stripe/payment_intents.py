"""`/v1/payment_intents`: create, retrieve, update and list.

Each function validates its parameters and returns the `Execute` that does
the work (see `calls`). Messages and codes are Stripe's.
"""

from __future__ import annotations

from paymesh.sandbox.stripe.amounts import MAXIMUM_AMOUNT, display_amount, minimum_amount
from paymesh.sandbox.stripe.calls import Call, Execute, now
from paymesh.sandbox.stripe.charging import CAPTURE_METHODS, card_for_token, confirm_with_card
from paymesh.sandbox.stripe.errors import StripeError
from paymesh.sandbox.stripe.ids import new_id, random_token
from paymesh.sandbox.stripe.objects import ListPage, PaymentIntent
from paymesh.sandbox.stripe.params import Params, merge_metadata

__all__ = ["create", "list_all", "retrieve", "update"]

# Accepted (here and by confirm) for compatibility with real integrations;
# stored or ignored, never interpreted.
PASSIVE_PARAMS = (
    "automatic_payment_methods",
    "error_on_requires_action",
    "mandate_data",
    "off_session",
    "payment_method_options",
    "receipt_email",
    "setup_future_usage",
    "shipping",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "use_stripe_sdk",
)
_CREATE = frozenset(
    {
        "amount",
        "currency",
        "payment_method",
        "confirm",
        "capture_method",
        "confirmation_method",
        "metadata",
        "description",
        "return_url",
        "payment_method_types",
        "customer",
        *PASSIVE_PARAMS,
    }
)
_UPDATE = frozenset(
    {
        "amount",
        "currency",
        "customer",
        "description",
        "metadata",
        "payment_method",
        "capture_method",
        "payment_method_types",
        *PASSIVE_PARAMS,
    }
)


def create(params: Params) -> Execute:
    params.only(_CREATE)
    amount = params.integer("amount", required=True)
    currency = params.currency()
    assert amount is not None
    _check_amount(amount, currency)
    token = params.string("payment_method")
    confirm = params.boolean("confirm") or False
    if confirm and token is None:
        raise StripeError.invalid_request(
            "You cannot confirm this PaymentIntent because it's missing a payment method. "
            "To confirm the PaymentIntent, provide a payment_method.",
            code="payment_intent_unexpected_state",
            param="payment_method",
        )
    capture_method = params.choice("capture_method", CAPTURE_METHODS) or "automatic_async"
    confirmation_method = params.choice("confirmation_method", ("automatic", "manual"))
    metadata = merge_metadata({}, params.metadata())
    description = params.string("description")
    customer = params.string("customer")
    return_url = params.url("return_url")
    off_session = params.off_session()
    receipt_email = params.string("receipt_email")
    descriptor = params.string("statement_descriptor")
    descriptor_suffix = params.string("statement_descriptor_suffix")
    setup_future_usage = params.string("setup_future_usage")
    shipping = params.mapping("shipping")
    automatic = params.mapping("automatic_payment_methods")
    types = params.string_list("payment_method_types") or ["card"]

    def execute(call: Call) -> PaymentIntent:
        card = card_for_token(token) if token is not None else None
        intent_id = new_id("pi")
        intent = PaymentIntent(
            id=intent_id,
            amount=amount,
            automatic_payment_methods=automatic,
            capture_method=capture_method,
            client_secret=f"{intent_id}_secret_{random_token(25)}",
            confirmation_method=confirmation_method or "automatic",
            created=now(),
            currency=currency,
            customer=customer,
            description=description,
            metadata=metadata,
            payment_method=token,
            payment_method_options={},
            payment_method_types=types,
            receipt_email=receipt_email,
            setup_future_usage=setup_future_usage,
            shipping=shipping,
            statement_descriptor=descriptor,
            statement_descriptor_suffix=descriptor_suffix,
            status="requires_confirmation" if token else "requires_payment_method",
        )
        call.account.payment_intents.add(intent_id, intent)
        if confirm and card is not None:
            confirm_with_card(call, intent, card, return_url, off_session=off_session)
        return intent

    return execute


def retrieve(params: Params) -> Execute:
    params.only(("client_secret",))
    intent_id = params.path_id()
    return lambda call: call.account.payment_intents.require(intent_id, "intent")


def update(params: Params) -> Execute:
    params.only(_UPDATE)
    intent_id = params.path_id()
    currency = params.currency() if "currency" in params.values else None
    amount = params.integer("amount")
    token = params.string("payment_method")
    capture_method = params.choice("capture_method", CAPTURE_METHODS)
    metadata = params.metadata()
    described = "description" in params.values
    description = params.string("description")
    customer = params.string("customer")
    types = params.string_list("payment_method_types")
    changes_payment = any(v is not None for v in (currency, amount, token, capture_method, types))

    def execute(call: Call) -> PaymentIntent:
        intent = call.account.payment_intents.require(intent_id, "intent")
        if changes_payment and intent.status not in (
            "requires_payment_method",
            "requires_confirmation",
            "requires_action",
        ):
            raise StripeError.unexpected_state(
                f"You cannot update this PaymentIntent because it has a status of "
                f"{intent.status}. Updates are only allowed when the PaymentIntent has a status "
                "of requires_payment_method, requires_confirmation, or requires_action."
            )
        if amount is not None:
            _check_amount(amount, currency or intent.currency)
        if token is not None:
            card_for_token(token)
            intent.payment_method = token
            intent.status = "requires_confirmation"
            intent.next_action = None
        intent.amount = amount if amount is not None else intent.amount
        intent.currency = currency or intent.currency
        intent.capture_method = capture_method or intent.capture_method
        intent.payment_method_types = types or intent.payment_method_types
        intent.customer = customer or intent.customer
        intent.description = description if described else intent.description
        intent.metadata = merge_metadata(intent.metadata, metadata)
        return intent

    return execute


def list_all(params: Params) -> Execute:
    params.only(("limit", "starting_after", "ending_before", "customer", "created"))
    limit = params.limit()
    after = params.string("starting_after")
    before = params.string("ending_before")
    customer = params.string("customer")
    created = params.created_filter()

    def matches(intent: PaymentIntent) -> bool:
        return (customer is None or intent.customer == customer) and (
            created is None or created(intent.created)
        )

    def execute(call: Call) -> ListPage:
        where = matches if customer is not None or created is not None else None
        data, more = call.account.payment_intents.page(limit, after, before, where)
        return ListPage(data=data, has_more=more, url="/v1/payment_intents")

    return execute


def _check_amount(amount: int, currency: str) -> None:
    if amount < minimum_amount(currency):
        least = display_amount(minimum_amount(currency), currency)
        raise StripeError.invalid_request(
            f"Amount must be at least {least} {currency}", code="amount_too_small", param="amount"
        )
    if amount > MAXIMUM_AMOUNT:
        most = display_amount(MAXIMUM_AMOUNT, currency)
        raise StripeError.invalid_request(
            f"Amount must be no more than {most}", code="amount_too_large", param="amount"
        )
