"""The payment use cases, one module each, and what they share:

    commands        what a client asks: CreatePayment, CapturePayment, CancelPayment,
                    RefundPayment
    create          create and confirm: score, route, record, authorise
    capture         capture an authorisation, in full or in part
    cancel          void an authorisation
    refund          reserve a refund, then ask the PSP (RefundDriver also serves recovery)
    authorization   drive a payment to its PSP's answer, with failover (also for the bus's
                    process_payment and payment_retry targets, and recovery)
    psp_caller      every PSP call: the same key on each retry, circuit breakers, 409/503
    idempotent      running under a client's idempotency key: replay, refuse, execute once
    unit_of_work    the one commit of a payment change, its events and its idempotency record
    service         PaymentService, the handlers wired together for the entrypoints

Applying a PSP webhook is `paymesh.service.webhooks`; recovering payments left in flight is
`paymesh.service.recovery`; the review queue's decisions are `paymesh.service.reviews`.
"""

from paymesh.service.payments.commands import (
    CancelPayment,
    CapturePayment,
    CreatePayment,
    RefundPayment,
)
from paymesh.service.payments.psp_caller import PspCaller, psp_key
from paymesh.service.payments.service import PaymentService

__all__ = [
    "CancelPayment",
    "CapturePayment",
    "CreatePayment",
    "PaymentService",
    "PspCaller",
    "RefundPayment",
    "psp_key",
]
