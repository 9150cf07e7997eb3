"""Card numbers (PANs) in text: paymesh takes PSP payment-method tokens, never card numbers.

A merchant who sends a card number in a description, a metadata value or a customer id would
make paymesh store it, log it and pass it on to PSPs and webhook targets: PCI DSS scope for
everyone downstream. The API refuses such a request before anything else sees it
(`entrypoints/http/intake.py`); this module only says whether text holds one.

What counts, as people write card numbers:

- 12 to 19 digits (ISO/IEC 7812's lengths) that pass Luhn's check and start as a payment
  card does: a major industry identifier of 2 to 6 (Mastercard's 2-series, Amex, Diners and
  JCB's 3, Visa's 4, Maestro and Mastercard's 5, Discover and UnionPay's 6), or UATP's 15
  digits starting with 1 (an airline card Adyen takes);
- contiguous ("4242424242424242"), or in the groups printed on cards and typed into forms,
  separated by single spaces or dashes: three or four groups of four and a last group of one
  to four digits (4-4-4-1 to 4-4-4-4, 4-4-4-4-1 to 4-4-4-4-3), Amex's 4-6-5, Diners' 4-6-4;
- anywhere in the text ("card 4242 4242 4242 4242 exp 12/30"), even followed by more groups
  (its expiry or CVC: "4242-4242-4242-4242-123").

What does not, to keep false positives off identifiers and other numbers:

- a run of digits glued to a letter ("sha1:da39a3ee5e6b4b0d3255bfef956018", a base32 id): a
  card number stands on its own; and a UUID, whose last group is twelve digits one time in
  280 (and then passes Luhn one time in ten);
- a contiguous run longer than 19 digits (an account or reference number), and a grouped run
  that does not start with a card's first group of four (a phone number "+44 20 7946 0958",
  an IBAN "DE89 3704 0044 0532 0130 00");
- integers of JSON documents (`find_in_json` reads strings only): amounts are at most 11
  digits, and 13-digit epoch milliseconds are numbers, not card numbers;
- a number starting with 0, 7, 8 or 9, or with 1 and not UATP's 15 digits: no card the PSPs
  take starts so (7 is petroleum, 8 healthcare and telecom, 9 national use), while epoch
  milliseconds and microseconds ("order-1735689600000", an idempotency key one writes every
  day) start with 1 and pass Luhn one time in ten.

Digits are Unicode decimal digits, so full-width ones count too. Stdlib only, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

__all__ = ["contains_card_number", "find_in_json", "luhn_valid"]

MIN_DIGITS, MAX_DIGITS = 12, 19

# Digit groups joined by single separators. Greedy and with nothing required after it, so it
# never backtracks: linear in the text.
_RUN = re.compile(r"\d+(?:[ -]\d+)*")
_SEPARATOR = re.compile(r"[ -]")
_UUID = re.compile(
    r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}"
    r"(?![0-9A-Fa-f])"
)
# Twelve digits (the fewest a card has), each after at most one separator.
_TWELVE_DIGITS = re.compile(rf"\d(?:[ -]?\d){{{MIN_DIGITS - 1}}}")
# Groups that fit a card's printed layout, beyond the first group of four.
_WIDE = ((4, 6, 4), (4, 6, 5))


def luhn_valid(digits: str) -> bool:
    """Luhn's mod-10 check over a string of decimal digits (Unicode ones too)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_card(digits: str) -> bool:
    if not MIN_DIGITS <= len(digits) <= MAX_DIGITS:
        return False
    industry = int(digits[0])
    if not (2 <= industry <= 6 or (industry == 1 and len(digits) == 15)):
        return False
    return luhn_valid(digits)


def _card_layouts(groups: list[str]) -> Iterator[str]:
    """The leading groups that are laid out like a printed card number, joined."""
    sizes = [len(g) for g in groups]
    if sizes[0] != 4:
        return
    for shape in _WIDE:
        if tuple(sizes[:3]) == shape:
            yield "".join(groups[:3])
    # Three or four fours, then a last group of one to four digits: 4-4-4-1 to 4-4-4-4-3.
    # (A 12-digit card, rare, counts written contiguously: 4-4-4 followed by another four is
    # far more often a 16-digit number than a 12-digit card and its security code.)
    for end in range(3, len(groups)):
        if sizes[end - 1] != 4:
            break
        if 1 <= sizes[end] <= 4:
            yield "".join(groups[: end + 1])


def contains_card_number(text: str) -> bool:
    """True if `text` holds something written like a card number (see the module's rules)."""
    # Most texts (ids, currencies, names) have no 12 digits in a row, however separated: one
    # search in C says so. Every candidate below lies in such a stretch (blanking a UUID
    # never joins digits: it is never next to one), so the answer is the same.
    if _TWELVE_DIGITS.search(text) is None:
        return False
    return _scan(text)


def _scan(text: str) -> bool:
    if "-" in text:
        text = _UUID.sub(" ", text)
    for run in _RUN.finditer(text):
        start, end = run.span()
        if (start and text[start - 1].isalpha()) or (end < len(text) and text[end].isalpha()):
            continue
        groups = _SEPARATOR.split(run.group())
        if any(_is_card(g) for g in groups):
            return True
        if len(groups) > 1 and any(_is_card(c) for c in _card_layouts(groups)):
            return True
    return False


def find_in_json(document: Any) -> str | None:
    """The path of the first string of a decoded JSON document that holds a card number
    ("metadata.note", "targets[0].url"; for an object key, the object's path), "" if it is at
    the top, or None if there is none. Iterative: a document may nest deeper than the stack."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if contains_card_number(value):
                return path
        elif isinstance(value, dict):
            children = []
            for key, item in value.items():
                if isinstance(key, str) and contains_card_number(key):
                    return path
                children.append((f"{path}.{key}" if path else str(key), item))
            stack.extend(reversed(children))
        elif isinstance(value, list):
            stack.extend(reversed([(f"{path}[{i}]", item) for i, item in enumerate(value)]))
    return None
