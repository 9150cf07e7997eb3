"""What Adyen answers for a payment method: the vault's test cards and Adyen's test values.

Adyen's test environment decides a payment's result from the card holder name (`APPROVED`,
`DECLINED`, `NOT_ENOUGH_BALANCE`, ...) or from
`additionalData.RequestedTestAcquirerResponseCode`; the table below is Adyen's published one
(docs.adyen.com, "Testing result codes and refusal reasons"). A token from the shared vault
(`pm_card_...`) carries its outcome in Stripe's vocabulary; `for_card` renders it as the
refusal reason and raw acquirer response Adyen maps that issuer answer to. Adyen has no
"lost" or "stolen" refusal reason: it reports both as `Blocked Card`, and only the raw
response (`41 : Lost card`, `43 : Stolen card`) tells them apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from paymesh.sandbox.cards import TestCard

__all__ = [
    "Refusal",
    "Verdict",
    "brand_of_number",
    "for_acquirer_code",
    "for_card",
    "for_holder_name",
    "luhn_valid",
]

AUTHORISED = "Authorised"
REFUSED = "Refused"
ERROR = "Error"
RECEIVED = "Received"


@dataclass(frozen=True, slots=True)
class Refusal:
    result_code: str  # Refused | Error
    reason: str  # refusalReason
    code: str  # refusalReasonCode: a numeral, sent as a string
    raw: str | None = None  # additionalData.refusalReasonRaw


@dataclass(frozen=True, slots=True)
class Verdict:
    result_code: str  # Authorised | Refused | Error | Received
    refusal: Refusal | None = None
    requires_3ds: bool = False


def _refused(code: str, reason: str, raw: str | None = None) -> Verdict:
    return Verdict(REFUSED, Refusal(REFUSED, reason, code, raw))


def _error(code: str, reason: str, raw: str | None = None) -> Verdict:
    return Verdict(ERROR, Refusal(ERROR, reason, code, raw))


# (RequestedTestAcquirerResponseCode, holderName, verdict), as Adyen publishes them.
_TEST_VALUES: list[tuple[int, str, Verdict]] = [
    (0, "UNKNOWN", _error("0", "Unknown")),
    (1, "APPROVED", Verdict(AUTHORISED)),
    (2, "DECLINED", _refused("2", "Refused")),
    (3, "REFERRAL", _refused("3", "Referral")),
    (4, "ERROR", _error("4", "Acquirer Error")),
    (5, "BLOCK_CARD", _refused("5", "Blocked Card")),
    (6, "CARD_EXPIRED", _refused("6", "Expired Card")),
    (7, "INVALID_AMOUNT", _refused("7", "Invalid Amount")),
    (8, "INVALID_CARD_NUMBER", _refused("8", "Invalid Card Number")),
    (9, "ISSUER_UNAVAILABLE", _refused("9", "Issuer Unavailable")),
    (10, "NOT_SUPPORTED", _refused("10", "Not supported")),
    (11, "NOT_3D_AUTHENTICATED", _refused("11", "3D Not Authenticated")),
    (12, "NOT_ENOUGH_BALANCE", _refused("12", "Not enough balance")),
    (13, "PENDING", Verdict(RECEIVED)),
    (14, "ACQUIRER_FRAUD", _refused("14", "Acquirer Fraud")),
    (15, "CANCELLED", _refused("15", "Cancelled")),
    (16, "SHOPPER_CANCELLED", _refused("16", "Shopper Cancelled")),
]
_BY_HOLDER = {name: verdict for _, name, verdict in _TEST_VALUES}
_BY_CODE = {code: verdict for code, _, verdict in _TEST_VALUES}

# The vault's declines (Stripe's decline codes) as Adyen reports the same issuer answer.
_VAULT_DECLINES: dict[str, Verdict] = {
    "generic_decline": _refused("2", "Refused", "05 : Do not honor"),
    "insufficient_funds": _refused(
        "12", "Not enough balance", "51 : Insufficient funds/over credit limit"
    ),
    "lost_card": _refused("5", "Blocked Card", "41 : Lost card"),
    "stolen_card": _refused("5", "Blocked Card", "43 : Stolen card"),
    "fraudulent": _refused("31", "Issuer Suspected Fraud", "59 : Suspected fraud"),
    "expired_card": _refused("6", "Expired Card", "54 : Expired card"),
    "incorrect_cvc": _refused("24", "CVC Declined", "N7 : Decline for CVV2 failure"),
    "processing_error": _error("4", "Acquirer Error", "96 : System malfunction"),
}

#: The vault's brand names as Adyen names the card variant (`paymentMethod` in webhooks).
ADYEN_BRANDS = {"visa": "visa", "mastercard": "mc", "amex": "amex", "discover": "discover"}

THREE_DS_FAILED = _refused("11", "3D Not Authenticated")


def for_holder_name(holder_name: str | None) -> Verdict | None:
    return _BY_HOLDER.get((holder_name or "").strip().upper())


def for_acquirer_code(code: object) -> Verdict | None:
    try:
        return _BY_CODE.get(int(str(code)))
    except ValueError:
        return None


def for_card(card: TestCard) -> Verdict:
    if card.decline is None:
        return Verdict(AUTHORISED, requires_3ds=card.requires_3ds)
    found = _VAULT_DECLINES.get(card.decline.decline_code, _VAULT_DECLINES["generic_decline"])
    # A card that needs 3DS and then declines is asked to authenticate first.
    return Verdict(found.result_code, found.refusal, requires_3ds=card.requires_3ds)


def luhn_valid(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def brand_of_number(number: str) -> str:
    """Adyen's variant for a raw card number, from its leading digits."""
    if number.startswith("4"):
        return "visa"
    if number[:2] in ("34", "37"):
        return "amex"
    if number.startswith(("6011", "65")):
        return "discover"
    head = int(number[:4]) if number[:4].isdigit() else 0
    if 5100 <= head <= 5599 or 2221 <= head <= 2720:
        return "mc"
    return "card"
