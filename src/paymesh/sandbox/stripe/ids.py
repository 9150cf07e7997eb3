"""Stripe-looking object ids: a type prefix and random letters and digits."""

from __future__ import annotations

import os
import string

__all__ = ["new_id", "random_token"]

_ALPHABET = (string.ascii_letters + string.digits).encode()
# Maps every byte to one of the 62 characters. The slight bias of 256 % 62 is
# irrelevant for ids that need to be unique, not secret, and one urandom call
# plus one translate is far cheaper than drawing characters one by one; this
# sits on the benchmark's hot path (three or four ids per payment).
_TO_ALPHABET = bytes(_ALPHABET[byte % len(_ALPHABET)] for byte in range(256))


def random_token(length: int = 24) -> str:
    return os.urandom(length).translate(_TO_ALPHABET).decode("ascii")


def new_id(prefix: str, length: int = 24) -> str:
    """`new_id("pi")` -> "pi_3PqL0e2eZvKYlo2C1x8WgGmY"."""
    return f"{prefix}_{random_token(length)}"
