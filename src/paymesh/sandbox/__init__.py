"""Offline PSPs that speak each provider's wire format, for tests and demos.

Each sandbox lives in its own package (`paymesh.sandbox.stripe`, ...) and
shares fault injection (`faults`), webhook delivery (`webhooks`), the test
payment-method catalogue (`cards`) and form decoding (`forms`).
"""
