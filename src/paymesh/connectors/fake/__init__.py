"""A fake PSP held entirely in memory, for tests: a `Connector` with a ledger to assert on.

`FakePsp` answers like a PSP sandbox (Stripe's test cards, idempotency keys, partial capture,
refunds up to the captured amount, signed webhooks) and fails on demand, at random rates or
scripted call by call, including the failure that matters most: the PSP did the work and the
answer was lost. No socket, file or thread: a test on it runs in microseconds and can say
"exactly one charge".

It is a test double, never a PSP paymesh can be configured to use: it is in no registry, no
setting names it, and live mode never fakes a PSP. Tests inject it by code only, as the
connector of a `PaymentService` or `WebhookService` (under any name, so two fakes can stand
for "stripe" and "adyen").
"""

from paymesh.connectors.fake.cards import TEST_CARDS, FakeCard
from paymesh.connectors.fake.faults import FAULTS, OPERATIONS
from paymesh.connectors.fake.psp import FakeCharge, FakePsp, FakeRefund
from paymesh.connectors.fake.webhook import SIGNATURE_HEADER, SignedWebhook

__all__ = [
    "FAULTS",
    "OPERATIONS",
    "SIGNATURE_HEADER",
    "TEST_CARDS",
    "FakeCard",
    "FakeCharge",
    "FakePsp",
    "FakeRefund",
    "SignedWebhook",
]
