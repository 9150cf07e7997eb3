"""Adyen's refusal reasons in our vocabulary (Stripe's decline codes), as one table.

Adyen reports a refused payment with `refusalReason` and `refusalReasonCode` (docs.adyen.com,
"Refusal reasons"); a notification carries only the reason text, so the table is found by
either. `retryable` marks soft declines only: a technical failure on the way to the issuer,
which may pass on a later try. A decline by the issuer (no money, expired, fraud) will not.

Adyen has no "lost card" or "stolen card" reason: it reports both as `Blocked Card`, and the
raw acquirer response (`refusalReasonRaw`, sent when the merchant enables it) says which.
"""

from __future__ import annotations

from dataclasses import dataclass

from paymesh.domain.payment import Failure

__all__ = ["REFUSALS", "Refusal", "failure_for"]

DECLINED = "card_declined"
PROCESSING = "processing_error"
AUTHENTICATION = "payment_intent_authentication_failure"


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str  # Adyen's refusalReason
    code: str  # our Failure.code
    decline_code: str | None
    retryable: bool = False


def _declined(reason: str, decline_code: str) -> Refusal:
    return Refusal(reason, DECLINED, decline_code)


#: refusalReasonCode -> what it means to us. Codes not listed are generic declines.
REFUSALS: dict[str, Refusal] = {
    "0": Refusal("Unknown", PROCESSING, PROCESSING, retryable=True),
    "2": _declined("Refused", "generic_decline"),
    "3": _declined("Referral", "call_issuer"),
    "4": Refusal("Acquirer Error", PROCESSING, PROCESSING, retryable=True),
    "5": _declined("Blocked Card", "restricted_card"),
    "6": Refusal("Expired Card", "expired_card", "expired_card"),
    "7": _declined("Invalid Amount", "invalid_amount"),
    "8": Refusal("Invalid Card Number", "incorrect_number", "incorrect_number"),
    "9": Refusal("Issuer Unavailable", DECLINED, "issuer_not_available", retryable=True),
    "10": _declined("Not supported", "card_not_supported"),
    "11": Refusal("3D Not Authenticated", AUTHENTICATION, None),
    "12": _declined("Not enough balance", "insufficient_funds"),
    "14": _declined("Acquirer Fraud", "fraudulent"),
    "15": _declined("Cancelled", "generic_decline"),
    "16": _declined("Shopper Cancelled", "generic_decline"),
    "17": _declined("Invalid Pin", "incorrect_pin"),
    "18": _declined("Pin tries exceeded", "pin_try_exceeded"),
    "20": _declined("FRAUD", "fraudulent"),
    "21": Refusal("Not Submitted", PROCESSING, PROCESSING, retryable=True),
    "22": _declined("FRAUD-CANCELLED", "fraudulent"),
    "23": _declined("Transaction Not Permitted", "transaction_not_allowed"),
    "24": Refusal("CVC Declined", "incorrect_cvc", "incorrect_cvc"),
    "25": _declined("Restricted Card", "restricted_card"),
    "26": _declined("Revocation Of Auth", "revocation_of_authorization"),
    "27": _declined("Declined Non Generic", "generic_decline"),
    "28": _declined("Withdrawal amount exceeded", "card_velocity_exceeded"),
    "29": _declined("Withdrawal count exceeded", "card_velocity_exceeded"),
    "31": _declined("Issuer Suspected Fraud", "fraudulent"),
    "32": _declined("AVS Declined", "incorrect_zip"),
    "38": _declined("Authentication required", "authentication_required"),
    "46": _declined(
        "Transaction blocked by Adyen to prevent excessive retry fees", "do_not_try_again"
    ),
}
_BY_REASON = {refusal.reason.lower(): refusal for refusal in REFUSALS.values()}

# Raw acquirer responses that say more than Adyen's mapped reason.
_RAW = {"41": "lost_card", "43": "stolen_card"}

_GENERIC = _declined("Refused", "generic_decline")
_ERROR = Refusal("Error", PROCESSING, PROCESSING, retryable=True)


def failure_for(
    result_code: str | None, reason: str | None, code: str | None = None, raw: str | None = None
) -> Failure:
    """The Failure for a payment Adyen refused (or failed on, resultCode `Error`)."""
    refusal = REFUSALS.get(str(code)) if code is not None else None
    if refusal is None and reason:
        refusal = _BY_REASON.get(reason.strip().lower())
    if refusal is None:
        refusal = _ERROR if result_code == "Error" else _GENERIC
    decline_code = refusal.decline_code
    raw_code = (raw or "").partition(":")[0].strip()
    if raw_code in _RAW:
        decline_code = _RAW[raw_code]
    return Failure(
        code=refusal.code,
        decline_code=decline_code,
        message=reason or refusal.reason,
        retryable=refusal.retryable,
    )
