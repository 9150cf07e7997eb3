"""Live and sandbox mode: which PSPs run, with which secrets (issue 12, items 3 and 4).

Live mode uses a PSP only with its real credentials and never fakes one; sandbox mode
generates its secrets per data directory, so no secret is compiled into paymesh.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from paymesh.bootstrap import build_connectors
from paymesh.config import BUILT_IN_SECRETS, ConfigError, Settings

STRIPE_LIVE = {
    "stripe_secret_key": "sk_live_" + "a1B2" * 8,
    "stripe_webhook_secret": "whsec_" + "Zx9y" * 8,
}
ADYEN_LIVE = {
    "adyen_api_base": "https://abc123-checkout-live.adyenpayments.com/checkout",
    "adyen_api_key": "AQEyhmfxK4" + "q" * 40,
    "adyen_merchant_account": "ShopECOM",
    "adyen_hmac_key": "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056",
}


@pytest.fixture(autouse=True)
def no_paymesh_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("PAYMESH_"):
            monkeypatch.delenv(name)


def live(tmp_path: Path, **values: object) -> Settings:
    return Settings.from_env(data_dir=tmp_path, mode="live", **values)


def test_live_mode_disables_unconfigured_psps_instead_of_faking_them(tmp_path: Path) -> None:
    settings = live(tmp_path, **STRIPE_LIVE)
    assert [settings.psp_mode(p) for p in ("stripe", "adyen", "paypal")] == [
        "live",
        "disabled",
        "disabled",
    ]
    assert settings.stripe_api_base == "https://api.stripe.com"
    assert settings.sandboxed_psps == ()
    # No connector for a disabled PSP: nothing can be routed or failed over to it.
    assert list(build_connectors(settings)) == ["stripe"]


def test_live_mode_refuses_to_start_with_no_psp(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no PSP configured"):
        live(tmp_path)


@pytest.mark.parametrize("secret", sorted(s for s in BUILT_IN_SECRETS if s.startswith("whsec")))
def test_live_mode_refuses_a_built_in_webhook_secret(tmp_path: Path, secret: str) -> None:
    with pytest.raises(ConfigError, match="PAYMESH_STRIPE_WEBHOOK_SECRET is a built-in"):
        live(tmp_path, **{**STRIPE_LIVE, "stripe_webhook_secret": secret})


def test_live_mode_refuses_a_half_configured_psp(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs PAYMESH_STRIPE_WEBHOOK_SECRET"):
        live(tmp_path, stripe_secret_key=STRIPE_LIVE["stripe_secret_key"])
    with pytest.raises(ConfigError, match="PAYMESH_ADYEN_HMAC_KEY does not look like"):
        live(tmp_path, **{**ADYEN_LIVE, "adyen_hmac_key": "not-hex"})


def test_live_mode_refuses_a_plain_http_api_base(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be https"):
        live(tmp_path, **STRIPE_LIVE, stripe_api_base="http://127.0.0.1:9/stripe")


def test_mixing_live_and_sandbox_psps_needs_the_explicit_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PAYMESH_ALLOW_MIXED_MODE"):
        live(tmp_path, **STRIPE_LIVE, sandbox_psps=("paypal",))
    mixed = live(tmp_path, **STRIPE_LIVE, sandbox_psps=("paypal",), allow_mixed_mode=True)
    assert [mixed.psp_mode(p) for p in ("stripe", "adyen", "paypal")] == [
        "live",
        "disabled",
        "sandbox",
    ]
    assert mixed.sandboxed_psps == ("paypal",)


def test_two_live_psps(tmp_path: Path) -> None:
    settings = live(tmp_path, **STRIPE_LIVE, **ADYEN_LIVE)
    assert settings.enabled_psps == ("stripe", "adyen")
    assert settings.adyen_api_base == ADYEN_LIVE["adyen_api_base"]


def test_sandbox_mode_refuses_a_real_psp_api_base(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sandbox mode"):
        Settings.from_env(data_dir=tmp_path, stripe_api_base="https://api.stripe.com")


def test_sandbox_secrets_are_generated_per_data_directory(tmp_path: Path) -> None:
    one = Settings.from_env(data_dir=tmp_path / "one")
    again = Settings.from_env(data_dir=tmp_path / "one")
    other = Settings.from_env(data_dir=tmp_path / "two")
    names = (
        "stripe_secret_key",
        "stripe_webhook_secret",
        "adyen_api_key",
        "adyen_hmac_key",
        "paypal_client_secret",
        "paypal_webhook_id",
        "delivery_signing_secret",
    )
    for name in names:
        value = getattr(one, name)
        assert value and value not in BUILT_IN_SECRETS, name
        assert getattr(again, name) == value, name  # kept: a restart verifies the same way
        assert getattr(other, name) != value, name
    kept = tmp_path / "one" / "sandbox" / "secrets.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    # A sandbox and its server sharing the directory share the secrets.
    assert one.sandbox_secrets.stripe_webhook_secret == one.stripe_webhook_secret


def test_a_given_secret_wins_over_the_generated_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYMESH_STRIPE_WEBHOOK_SECRET", "whsec_mine_for_an_external_sandbox")
    settings = Settings.from_env(data_dir=tmp_path)
    assert settings.stripe_webhook_secret == "whsec_mine_for_an_external_sandbox"
    assert settings.sandbox_secrets.stripe_webhook_secret == "whsec_mine_for_an_external_sandbox"


def test_secrets_never_appear_in_a_repr(tmp_path: Path) -> None:
    settings = live(tmp_path, **STRIPE_LIVE, **ADYEN_LIVE)
    sandbox = Settings.from_env(data_dir=tmp_path / "box")
    shown = repr(settings) + repr(sandbox) + repr(sandbox.sandbox_secrets)
    secrets = [
        *STRIPE_LIVE.values(),
        ADYEN_LIVE["adyen_api_key"],
        ADYEN_LIVE["adyen_hmac_key"],
        sandbox.stripe_webhook_secret,
        sandbox.stripe_secret_key,
        sandbox.adyen_hmac_key,
        sandbox.paypal_client_secret,
        sandbox.delivery_signing_secret,
    ]
    for secret in secrets:
        assert secret and secret not in shown
    for connector in build_connectors(settings).values():
        shown = repr(connector) + repr(connector.settings)  # type: ignore[attr-defined]
        for secret in (
            *STRIPE_LIVE.values(),
            ADYEN_LIVE["adyen_api_key"],
            ADYEN_LIVE["adyen_hmac_key"],
        ):
            assert secret not in shown
