"""What live mode accepts as a PSP's real configuration.

A PSP with none of its settings is disabled (never faked). A PSP with some but not all of them,
or with a secret that cannot be real (a value paymesh ever shipped, a sandbox-looking value,
one too short to be a PSP's), stops the start: a half-configured PSP in front of real money
is a mistake to fix, not to run with. Messages name the setting, never its value.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from paymesh.config import BUILT_IN_SECRETS, ConfigError

if TYPE_CHECKING:
    from paymesh.config import Settings

#: (setting, environment variable) a PSP needs in live mode.
REQUIRED: dict[str, tuple[tuple[str, str], ...]] = {
    "stripe": (
        ("stripe_secret_key", "PAYMESH_STRIPE_SECRET_KEY"),
        ("stripe_webhook_secret", "PAYMESH_STRIPE_WEBHOOK_SECRET"),
    ),
    "adyen": (
        ("adyen_api_base", "PAYMESH_ADYEN_API_BASE"),
        ("adyen_api_key", "PAYMESH_ADYEN_API_KEY"),
        ("adyen_merchant_account", "PAYMESH_ADYEN_MERCHANT_ACCOUNT"),
        ("adyen_hmac_key", "PAYMESH_ADYEN_HMAC_KEY"),
    ),
    "paypal": (
        ("paypal_client_id", "PAYMESH_PAYPAL_CLIENT_ID"),
        ("paypal_client_secret", "PAYMESH_PAYPAL_CLIENT_SECRET"),
        ("paypal_webhook_id", "PAYMESH_PAYPAL_WEBHOOK_ID"),
        ("paypal_trusted_cert", "PAYMESH_PAYPAL_TRUSTED_CERT"),
    ),
}

#: Each secret's shape as the PSP issues it; anything else was not issued by the PSP.
_SHAPES: dict[str, tuple[re.Pattern[str], str]] = {
    "stripe_secret_key": (
        re.compile(r"^(sk|rk)_(live|test)_[A-Za-z0-9]{16,}$"),
        "a Stripe secret or restricted key (sk_live_…, rk_live_…)",
    ),
    "stripe_webhook_secret": (
        re.compile(r"^whsec_[A-Za-z0-9+/=]{24,}$"),
        "the endpoint's signing secret from Stripe (whsec_…)",
    ),
    "adyen_api_key": (re.compile(r"^\S{32,}$"), "an Adyen API key"),
    "adyen_hmac_key": (
        re.compile(r"^([0-9A-Fa-f]{2}){32,}$"),
        "the hex HMAC key from Adyen's Customer Area",
    ),
    "paypal_client_secret": (re.compile(r"^\S{32,}$"), "a PayPal REST app secret"),
}
_SANDBOX_MARKERS = ("paymesh_sandbox", "paymesh-sandbox", "paymeshsandbox")


def check_live_psp(settings: Settings, psp: str) -> bool:
    """True when `psp` is fully and plausibly configured for live use; False when it is not
    configured at all; `ConfigError` when it is half configured or a secret is not real."""
    required = REQUIRED[psp]
    given = [(name, env) for name, env in required if getattr(settings, name) is not None]
    if not given:
        return False
    missing = [env for name, env in required if getattr(settings, name) is None]
    if missing:
        raise ConfigError(
            f"{psp}: live mode needs {', '.join(missing)} too (or none of its "
            "settings, to disable it)"
        )
    for name, env in required:
        value = getattr(settings, name)
        if not isinstance(value, str):
            continue
        if value in BUILT_IN_SECRETS or any(m in value.lower() for m in _SANDBOX_MARKERS):
            raise ConfigError(f"{psp}: {env} is a built-in sandbox value, not a real secret")
        shape = _SHAPES.get(name)
        if shape is not None and not shape[0].match(value):
            raise ConfigError(f"{psp}: {env} does not look like {shape[1]}")
    base = settings.api_base_of(psp)
    if base is not None and urlsplit(base).scheme != "https":
        raise ConfigError(f"{psp}: a live API base must be https (PAYMESH_{psp.upper()}_API_BASE)")
    return True
