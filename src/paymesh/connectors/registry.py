"""The PSPs paymesh speaks to, by name, each with how its connector and sandbox are built.

Adding a PSP: its folder under connectors/ (connector, translate, webhook, and `entry.py`
with its `ENTRY`) and its sandbox under sandbox/; one subclass of the connector contract
suite (tests/contract/connector_contract.py); and one line below. The order is the default
failover order: Stripe first.
"""

from __future__ import annotations

from paymesh.connectors.adyen import entry as adyen
from paymesh.connectors.paypal import entry as paypal
from paymesh.connectors.psp_entry import ConnectorSetup, PspEntry
from paymesh.connectors.stripe import entry as stripe

__all__ = ["REGISTRY", "ConnectorSetup", "PspEntry"]

REGISTRY: dict[str, PspEntry] = {
    entry.name: entry
    for entry in (
        stripe.ENTRY,
        adyen.ENTRY,
        paypal.ENTRY,
    )
}
