"""SMS through Twilio's Messages API (or the built-in sandbox that speaks it).

One call: `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded `To`,
`From` and `Body`, HTTP basic authentication with the account SID and its auth token, and
the header `I-Twilio-Idempotency-Token`, so a repeat of one outcome's message (a retry after
a lost answer, or a crash before it was recorded) is taken by Twilio as the same message.
Twilio answers a created Message (`sid`, `status`) or an error `{code, message, status}`:
429 and 5xx may pass later, any other 4xx (an invalid number, a number that cannot receive
SMS, wrong credentials) will not.
"""

from __future__ import annotations

import base64
from urllib.parse import quote, urlencode

import aiohttp
import msgspec

from paymesh.ports.notifier import SendLater, SmsMessage, Undeliverable

__all__ = ["TWILIO_API_BASE", "TwilioSmsSender"]

TWILIO_API_BASE = "https://api.twilio.com"
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"


class _TwilioError(msgspec.Struct):
    code: int | None = None
    message: str | None = None


class TwilioSmsSender:
    """Implements `paymesh.ports.notifier.SmsSender`. One aiohttp session, made on first use
    inside the running loop; `aclose` closes it."""

    def __init__(
        self,
        api_base: str,
        account_sid: str,
        auth_token: str,
        from_number: str,
        timeout: float = 10.0,
    ) -> None:
        self.url = (
            f"{api_base.rstrip('/')}/2010-04-01/Accounts/{quote(account_sid, safe='')}"
            "/Messages.json"
        )
        token = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self._authorization = f"Basic {token}"
        self.from_number = from_number
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # the auth token stays out of logs
        return f"TwilioSmsSender({self.url!r})"

    async def send(self, message: SmsMessage) -> None:
        body = urlencode({"To": message.to, "From": self.from_number, "Body": message.body})
        headers = {
            "Authorization": self._authorization,
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            IDEMPOTENCY_HEADER: message.idempotency_token,
        }
        if self._session is None:
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        limits = aiohttp.ClientTimeout(total=self.timeout, sock_connect=min(self.timeout, 2.0))
        try:
            async with self._session.post(
                self.url, data=body.encode(), headers=headers, timeout=limits
            ) as response:
                status, raw = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Sent or not, a retry carries the same token: Twilio sends it once.
            raise SendLater(f"SMS provider unreachable ({type(exc).__name__})") from exc
        if 200 <= status < 300:
            return
        error = _error_of(raw)
        reason = f"Twilio {status}" + (f" error {error.code}" if error.code else "")
        if error.message:
            reason += f": {error.message}"
        if status == 429 or status >= 500:
            raise SendLater(reason, error.code)
        raise Undeliverable(reason, error.code)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _error_of(raw: bytes) -> _TwilioError:
    try:
        return msgspec.json.decode(raw, type=_TwilioError)
    except msgspec.MsgspecError:
        return _TwilioError()  # a proxy's HTML page, say: the status alone decides
