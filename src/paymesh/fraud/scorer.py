"""The fraud engine (features, then rules, then observe) and its `RiskScorer` adapter."""

from __future__ import annotations

import contextlib
import gc
import itertools
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any, cast

import msgspec

from paymesh.domain.payment import FraudAssessment
from paymesh.fraud.features import EntityState, FeatureStore
from paymesh.fraud.memory import run_through
from paymesh.fraud.rules import RuleSet
from paymesh.fraud.transactions import Transaction
from paymesh.ports.fraud_feed import FraudFeed, NoFeed
from paymesh.ports.risk import RiskInput
from paymesh.ports.store import BlobPart, Spilled

if TYPE_CHECKING:  # the model module needs numpy: not imported by a deployment without one
    from paymesh.fraud.model import FraudModel, Verdict

SNAPSHOT_FORMAT = "paymesh.fraud.snapshot/2"
#: Before customers were keyed per merchant: restored without its customer state (see
#: `FeatureStore.restore`), so a checkpoint written by an older paymesh still loads.
_UNSCOPED_FORMAT = "paymesh.fraud.snapshot/1"


def load_model(spec: str) -> FraudModel | None:
    """The learned model a setting names: "packaged", "none" (the rules alone) or a file.

    Here, not in `paymesh.fraud.model`: "none" must import neither LightGBM nor numpy, so
    that a deployment without them runs the rules alone.
    """
    if spec in ("", "none"):
        return None
    from paymesh.fraud.model import FraudModel, ModelError

    if spec == "packaged":
        return FraudModel.packaged()
    try:
        return FraudModel.load(spec)
    except OSError as exc:
        raise ModelError(f"cannot read the fraud model {spec!r}: {exc.strerror}") from exc


class SnapshotError(ValueError):
    """Bytes that are not a fraud snapshot this version can restore; the engine is unchanged."""


def _msgpack_header(fixed: int, tag16: int, count: int) -> bytes:
    """The head of a msgpack array (0x90, 0xDC) or map (0x80, 0xDE) of `count` items, in the
    shortest form, as msgspec writes it: fix, 16-bit, then 32-bit (the tag after 16's)."""
    if count < 16:
        return bytes((fixed | count,))
    if count < 1 << 16:
        return bytes((tag16,)) + count.to_bytes(2, "big")
    return bytes((tag16 + 1,)) + count.to_bytes(4, "big")


class _MsgpackParts:
    """A stepped snapshot's parts as msgpack: one buffer per step, then each kind's map and
    the records' list as a `_Chain` of the map's or list's head and those buffers, which
    `_framed` places in the frame as they are. The bytes are those of encoding the plain
    snapshot.

    One buffer a step, not an object per entity or record: a snapshot of 200,000 records
    and 90,000 entities made some 600,000 small objects, alive for the whole checkpoint
    while the server went on allocating between its steps; the small-object arenas they
    took stayed half used when they were freed, and the server's RSS rose by 6-14 MiB at
    some checkpoints (issue 18's soak). Nor are the buffers joined: a join held each kind
    twice while it was made.
    """

    def __init__(
        self, encoder: msgspec.msgpack.Encoder, keep: Callable[[bytearray], BlobPart] = bytes
    ) -> None:
        self._into = encoder.encode_into
        self._keep = keep

    def entities(self, step: list[tuple[str, EntityState]]) -> BlobPart:
        buffer = bytearray()
        for key, state in step:
            self._into(key, buffer, -1)
            self._into(state.to_dict(), buffer, -1)
        # By default kept as bytes of its exact size (the buffer grew with room to spare);
        # a store's spill writes the buffer itself to its file.
        return self._keep(buffer)

    def entity_map(self, parts: list[BlobPart], count: int) -> _Chain:
        return _Chain([_msgpack_header(0x80, 0xDE, count), *parts])

    def records(self, step: list[tuple[Any, ...]]) -> BlobPart:
        buffer = bytearray()
        for record in step:
            self._into(record, buffer, -1)
        return self._keep(buffer)

    def record_list(self, parts: list[BlobPart], count: int) -> _Chain:
        return _Chain([_msgpack_header(0x90, 0xDC, count), *parts])


class _Chain:
    """Encoded msgpack in pieces: one value (a map, a list), its bytes the pieces' in order."""

    __slots__ = ("pieces",)

    def __init__(self, pieces: list[BlobPart]) -> None:
        self.pieces = pieces


def _framed(encoder: msgspec.msgpack.Encoder, document: dict[str, Any]) -> list[BlobPart]:
    """`encoder.encode(document)` with each `_Chain` in it (in dicts, at any depth) encoded
    as its pieces, as parts: the frame's bytes between the chains, and the chains' pieces as
    they are, in order."""
    token = uuid.uuid4().hex  # no text of the frame can be mistaken for a marker
    chains: list[_Chain] = []
    frame = encoder.encode(_marked(document, token, chains))
    parts: list[BlobPart] = []
    at = 0
    for i, chain in enumerate(chains):
        marker = encoder.encode(f"{token}:{i}")
        found = frame.index(marker, at)
        parts.append(memoryview(frame)[at:found])
        parts += [p if isinstance(p, Spilled) else memoryview(p) for p in chain.pieces]
        at = found + len(marker)
    parts.append(memoryview(frame)[at:])
    return parts


def _marked(value: Any, token: str, chains: list[_Chain]) -> Any:
    """`value` with each `_Chain` in it put in `chains` and replaced by its marker. Not a
    closure: a recursive one is a reference cycle, and the snapshot would have waited for
    the cycle collector to be freed, after the heap's trim."""
    if isinstance(value, _Chain):
        chains.append(value)
        return f"{token}:{len(chains) - 1}"
    if isinstance(value, dict):
        return {k: _marked(v, token, chains) for k, v in value.items()}
    return value


class FraudEngine:
    """Scores transactions on what came before them and learns from their outcomes.

    With a `model`, the model's score is the score, and the rules are one of its inputs
    (`rules_score`) except those marked `override` (the allow and block lists among them),
    which still decide beside it (`combine`): an allow list still clears, a hard limit still
    blocks.

    What the engine learns (alerts per card and device, the compromise search's "clean"
    payments) reads the rules' score, never the model's: the features a model is trained on
    must not depend on which model scored the past, or each new model would change its own
    inputs.

    Not thread-safe: call `score`, `observe` and `feedback` from one thread (one event loop).
    """

    def __init__(
        self,
        rules: RuleSet | None = None,
        store: FeatureStore | None = None,
        model: FraudModel | None = None,
    ) -> None:
        self.rules = rules if rules is not None else RuleSet.default()
        self.store = store if store is not None else FeatureStore()
        self.model = model

    def evaluate(self, txn: Transaction) -> tuple[dict[str, float], FraudAssessment]:
        """The features of `txn` (with `rules_score`) and the rules' assessment; learns `txn`."""
        features = self.store.features(txn)
        if self.rules.lists["block"] or self.rules.lists["allow"]:
            self.rules.list_hits(txn, features)
        ruled = self.rules.assess(features)
        features["rules_score"] = ruled.score
        self.store.observe(txn, ruled.score)
        return features, ruled

    def score(self, txn: Transaction) -> FraudAssessment:
        """Score `txn` on what came before it, then remember it for those that follow."""
        features, ruled = self.evaluate(txn)
        if self.model is None:
            return ruled
        return self.combine(ruled, self.model.verdict(features))

    def combine(self, ruled: FraudAssessment, verdict: Verdict) -> FraudAssessment:
        """The model's `verdict` under the overriding rules (see the class doc).

        The reasons: the overriding rules that hold, the rules that held (`ruled`: what a
        reviewer knows by name, and what the model read as `rules_score`), then the features
        that raised the model's margin most.

        Overriding rules that hold add up; a positive sum is a floor the model can only
        raise (a hard limit of 75 is at least a review, a block list's 100 a block), a
        negative one lowers the model's score (the allow list's -100 clears it).
        """
        assert self.model is not None
        extra, hits = self.rules.overrides(ruled)
        informed = tuple(f for f in ruled.factors if f not in hits)
        score = verdict.score
        if extra > 0:
            score = max(score, extra)
        elif extra < 0:
            score += extra
        score = max(0, min(100, score))
        return FraudAssessment(
            score=score,
            factors=(*hits, *informed, *verdict.factors),
            decision=self.rules.decide(score),
            model=self.model.version,
        )

    def observe(self, txn: Transaction, score: int) -> None:
        """Learn `txn`, scored `score` by another engine (another process, through the fraud
        feed), as if `score(txn)` had run here: what follows reads the same features either way.

        Once: the feed delivers at least once, so a transaction this engine already holds
        (its feedback memory remembers the id: the most recent `max_remembered`) is skipped.
        """
        if self.store.memory.get(txn.transaction_id) is None:
            self.store.observe(txn, score)

    def feedback(self, transaction_id: str, outcome: str, at: float) -> bool:
        """What became of a scored transaction: `approved`, `declined` or `disputed`, at `at`.

        A decline counts against the transaction's card, customer, device, IP and
        merchant (when its outcome was not known at scoring); a dispute raises the
        risk of all five for 30 days (7 for the merchant) and feeds the search for
        compromised merchants. Idempotent. False when the transaction is unknown:
        never scored here, or older than the feedback memory reaches.
        Raises ValueError for any other outcome.
        """
        return self.store.observe_outcome(transaction_id, outcome, at)

    def snapshot(self) -> bytes:
        """All that was learned (entity windows, feedback memory, flagged merchants).

        The rules are configuration, not learned state: they are not in it.
        """
        return run_through(self.snapshot_steps())

    def snapshot_steps(self) -> Generator[None, None, bytes]:
        """`snapshot()` in steps of a few milliseconds (see `FeatureStore.snapshot_steps`):
        the caller may let other work run at each yield. Returns the same bytes."""
        parts = yield from self.snapshot_parts_steps()
        # Without a `keep` every part is a buffer.
        return b"".join(cast("list[bytes | bytearray | memoryview]", parts))

    def snapshot_parts_steps(
        self, keep: Callable[[bytearray], BlobPart] = bytes
    ) -> Generator[None, None, list[BlobPart]]:
        """`snapshot_steps()`, returning the snapshot as the parts it is made of, in order:
        their concatenation is its bytes. A store can write them one after another
        (`put_blob_parts`) without the whole as one more copy: the snapshot is then held
        once, not two or three times, while a checkpoint is saved.

        Each step's entities or records are encoded into one buffer (`_MsgpackParts`), so
        no step builds the whole state as Python objects at once. The frame around the
        kinds' maps and the records' list (the snapshot's format, its keys, the compromise
        search's few entries) is encoded with a marker in place of each, then cut there.

        `keep` takes each step's buffer as it is made and returns the part to stand for it:
        a store's spill (`StateStore.spill`) writes it to a file, and the snapshot is then
        never all in memory. By default the part is the buffer's bytes, at their exact size.
        """
        encoder = msgspec.msgpack.Encoder()
        steps = self.store.snapshot_steps(_MsgpackParts(encoder, keep))
        while True:
            with _gc_paused():
                try:
                    next(steps)
                except StopIteration as done:
                    store: dict[str, Any] = done.value
                    break
            yield
        with _gc_paused():
            return _framed(encoder, {"format": SNAPSHOT_FORMAT, "store": store})

    def restore(self, data: bytes) -> None:
        """Replace the learned state with a `snapshot()`; keeps this engine's rules.

        A snapshot of the previous format (customers not yet keyed per merchant) loads
        without its customer state. Raises SnapshotError (and changes nothing) when `data`
        is not a snapshot.
        """
        try:
            with _gc_paused():
                decoded: Any = msgspec.msgpack.decode(data)
                found = decoded.get("format") if isinstance(decoded, dict) else None
                if found not in (SNAPSHOT_FORMAT, _UNSCOPED_FORMAT):
                    raise SnapshotError(f"not a fraud snapshot ({SNAPSHOT_FORMAT})")
                store = FeatureStore.restore(
                    decoded["store"], customers_scoped=found == SNAPSHOT_FORMAT
                )
        except SnapshotError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SnapshotError(f"cannot restore the fraud snapshot: {exc!r}") from exc
        self.store = store


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    # Building or reading a snapshot makes hundreds of thousands of containers at once;
    # each batch of them would set off a collection over the whole (large, and still
    # growing) state, several times over: without the pauses it takes many times longer.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class FraudRiskScorer:
    """Implements `paymesh.ports.risk.RiskScorer` over a `FraudEngine`.

    The payment id is the transaction id, so `engine.feedback(payment_id, ...)` finds
    the payment later. The payment method stands in for the card fingerprint: the same
    saved method is the same card. The merchant goes with it: the engine keys customers
    per merchant, since each merchant names its own customers. The clock is injected so
    tests are reproducible.
    Each scored transaction is announced on `feed`, so the engines of other processes
    count it too (scaled out, this one sees only its share of the payments).
    """

    def __init__(
        self,
        engine: FraudEngine,
        clock: Callable[[], float] = time.time,
        feed: FraudFeed | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.feed: FraudFeed = feed if feed is not None else NoFeed()
        # Only for a subject without a payment id; unique across restarts.
        self._ids = (f"risk-{uuid.uuid4().hex[:12]}-{n}" for n in itertools.count(1))

    async def assess(self, subject: RiskInput) -> FraudAssessment:
        ctx = subject.context
        txn = Transaction(
            transaction_id=subject.payment_id or next(self._ids),
            timestamp=self.clock(),
            customer_id=subject.customer_id,
            amount=subject.amount,
            currency=subject.currency,
            card_fingerprint=subject.payment_method or None,
            device_id=ctx.device_id,
            ip_address=ctx.ip_address,
            country=ctx.country,
            city=ctx.city,
            merchant_id=subject.merchant_id,
        )
        assessment = self.engine.score(txn)
        self.feed.observed(txn, assessment.score)
        return assessment
