"""Housekeeping: delete what the store no longer needs, a short batch at a time.

- Idempotency records past `expires_at` (service/idempotency.TTL after their claim). An
  expired record is already dead to the API: the next request with its key claims afresh.
  One still leased by a request in flight is left alone.
- Consumer marks (`Changeset.processed`: a webhook's PSP event id, a bus consumer's event
  id) older than `keep_processed`. A mark must outlive every redelivery of its event, or the
  redelivery is applied a second time. One window for all marks, 45 days by default:
    * webhooks: Adyen retries from its queue for up to 30 days; Stripe retries for up to 3
      days and keeps events 30 days, for resending by hand; PayPal retries for about 3 days;
    * the event bus: a delivery dies once its event is older than its rule's maximum event
      age (at most 24 h, as in EventBridge), and the NATS streams keep a message 7 days.
  Separate, shorter windows for bus marks would save little space and add a way to get it
  wrong.
- Delivered deliveries last saved before that same window. A delivery row is routing's
  once-only record of (event, rule, target): routing an event again makes no second delivery
  while its row exists, so it is kept as long as a consumer mark. Pending deliveries and dead
  letters are never purged (a dead letter waits for a person). Without this, deliveries were
  the largest share of the data directory's growth (~3 KB a payment).

Every process may run it (with PostgreSQL, several at once): a purge is idempotent, and two
never wait on each other's rows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from paymesh.ports.store import Purged, Store

log = logging.getLogger(__name__)

KEEP_PROCESSED = timedelta(days=45)
#: Webhook de-duplication must cover the longest PSP redelivery: Adyen's 30 days.
MIN_KEEP_PROCESSED = timedelta(days=35)


class Housekeeping:
    def __init__(
        self,
        store: Store,
        clock: Callable[[], datetime],
        interval_seconds: float = 3600.0,
        keep_processed: timedelta = KEEP_PROCESSED,
        batch: int = 1000,
    ) -> None:
        if keep_processed < MIN_KEEP_PROCESSED:
            raise ValueError(
                f"consumer marks must be kept at least {MIN_KEEP_PROCESSED.days} "
                "days: a PSP may redeliver a webhook that late"
            )
        self.store = store
        self.clock = clock
        self.interval_seconds = interval_seconds
        self.keep_processed = keep_processed
        self.batch = batch

    async def run_once(self) -> Purged:
        """Purge everything due now, in batches; the totals."""
        idempotency = processed = deliveries = 0
        while True:
            now = self.clock()
            done = await self.store.purge_expired(now, now - self.keep_processed, self.batch)
            idempotency += done.idempotency
            processed += done.processed
            deliveries += done.deliveries
            if max(done.idempotency, done.processed, done.deliveries) < self.batch:
                return Purged(idempotency, processed, deliveries)
            await asyncio.sleep(0)  # between batches, let requests' writes in

    async def run_forever(self) -> None:
        while True:
            try:
                purged = await self.run_once()
                if purged.idempotency or purged.processed or purged.deliveries:
                    log.info(
                        "housekeeping: purged %d expired idempotency records, %d consumer marks"
                        " and %d delivered deliveries",
                        purged.idempotency,
                        purged.processed,
                        purged.deliveries,
                    )
            except Exception:
                log.exception("housekeeping pass failed; the next one will retry")
            await asyncio.sleep(self.interval_seconds)
