"""The review workflow on Step Functions: each review's execution waits with a task token,
which the `review_opened` function keeps (a state document named after the payment); a
decision taken through the API is sent back with that token, and the execution ends."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

from paymesh.ports.store import StateStore

#: Errors that mean the execution no longer waits (timed out, ended, or never existed).
_ENDED = ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken")


def token_name(payment_id: str) -> str:
    return f"review-task/{payment_id}"


async def keep_token(store: StateStore, payment_id: str, token: str, at: datetime) -> None:
    await store.put_blob(token_name(payment_id), token.encode(), at)


class StepFunctionsReviews:
    def __init__(self, store: StateStore, client: Any) -> None:
        self.store = store
        self.client = client

    async def decided(self, payment_id: str, decision: str) -> None:
        token = await self.store.get_blob(token_name(payment_id))
        if token is None:
            return  # no execution waits on this review (opened before the workflow, say)
        output = json.dumps({"decision": decision, "payment_id": payment_id})
        try:
            await asyncio.get_running_loop().run_in_executor(
                None,
                lambda: self.client.send_task_success(taskToken=token.decode(), output=output),
            )
        except Exception as exc:  # botocore's ClientError, by its code
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code not in _ENDED:
                raise
