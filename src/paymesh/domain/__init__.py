"""The payment domain: money, the payment state machine, refunds, events. Standard library only."""
