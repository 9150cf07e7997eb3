"""An offline Twilio Messages API: the SMS provider's sandbox.

    sandbox = TwilioSandbox(TwilioSandboxSettings(account_sid="AC...", auth_token="..."))
    app = Starlette(routes=[Mount("/sandbox/twilio", app=sandbox.app)])

Point the SMS sender at `http://HOST:PORT/sandbox/twilio` (as `PAYMESH_TWILIO_API_BASE`).
It keeps the messages it accepted (`sandbox.messages`, and Twilio's list endpoint), takes a
repeated `I-Twilio-Idempotency-Token` as the same message, answers Twilio's test numbers
with Twilio's errors (permanent failures) and `PUT /_config` faults (transient ones).
"""

from paymesh.sandbox.twilio.app import TEST_NUMBERS, TwilioSandbox, TwilioSandboxSettings

__all__ = ["TEST_NUMBERS", "TwilioSandbox", "TwilioSandboxSettings"]
