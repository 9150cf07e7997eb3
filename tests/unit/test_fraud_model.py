"""The learned fraud model: its explanations, its score scale, its files, and the engine with it.

A small model is trained once here from a generated history (the way `paymesh fraud train`
does); the packaged model is loaded as `paymesh serve` loads it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from importlib import resources

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paymesh.adapters.codec import payment_from_doc, payment_to_doc
from paymesh.domain.payment import FraudAssessment, Payment
from paymesh.fraud.features import FeatureStore
from paymesh.fraud.generator import generate_episodes, history_records, outcomes, replay_records
from paymesh.fraud.model import FraudModel, ModelError, OneRowLeaves
from paymesh.fraud.replay import replay
from paymesh.fraud.rules import RuleError, RuleSet
from paymesh.fraud.scorer import FraudEngine, load_model
from paymesh.fraud.training import Replayed, assess_all, replay_history, train
from paymesh.fraud.transactions import parse_transaction

SEED = 11
PACKAGED = FraudModel.packaged()  # loaded once, as `paymesh serve` loads it


@pytest.fixture(scope="module")
def history() -> Replayed:
    stream, episodes = generate_episodes(20_000, SEED)
    return replay_history(history_records(stream, episodes, SEED))


@pytest.fixture(scope="module")
def model(history: Replayed) -> FraudModel:
    return train(history, seed=3)


def test_the_explanation_sums_to_lightgbms_own_margin(model: FraudModel, history: Replayed) -> None:
    rows = [model.vector(f) for f in history.features[:3000]]
    raw = model.booster.predict(np.asarray(rows), raw_score=True)
    verdicts = model.verdicts(rows)
    assert [v.margin for v in verdicts] == pytest.approx(list(raw), abs=1e-9)
    # One by one (inline) as in batches (replay): the same verdicts.
    assert [model.verdict(f) for f in history.features[:200]] == verdicts[:200]


# A row of the packaged model's features: any float, missing (NaN) or zero, where the trees'
# thresholds and LightGBM's missing-value and zero handling all decide a side.
_ROWS = st.lists(
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False, width=64),
        st.floats(min_value=-1e4, max_value=1e4),
        st.sampled_from([float("nan"), 0.0, -0.0, 1.0]),
    ),
    min_size=len(PACKAGED.features),
    max_size=len(PACKAGED.features),
)


@given(_ROWS)
def test_one_rows_fast_leaves_are_predicts_leaves(row: list[float]) -> None:
    fast = OneRowLeaves.open(PACKAGED.booster, len(PACKAGED.features), PACKAGED.booster.num_trees())
    assert fast is not None  # the pinned LightGBM has the single-row fast API
    slow = PACKAGED.booster.predict(np.array([row]), pred_leaf=True, num_threads=1)[0]
    assert fast.leaves(row).tolist() == slow.tolist()


def test_inline_scoring_takes_the_fast_path_and_scores_as_the_batch_does(
    history: Replayed,
) -> None:
    """The packaged model inline goes through `OneRowLeaves` (not `predict`), and its
    verdicts are the batch's, factors and all."""
    calls: list[int] = []
    original = PACKAGED.booster.predict

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return original(*args, **kwargs)

    PACKAGED.booster.predict = counted
    try:
        inline = [PACKAGED.verdict(f) for f in history.features[:300]]
    finally:
        del PACKAGED.booster.predict
    assert calls == []
    assert inline == PACKAGED.verdicts([PACKAGED.vector(f) for f in history.features[:300]])
    assert any(v.factors for v in inline)


def test_a_flagged_payment_names_the_features_that_raised_it(
    model: FraudModel, history: Replayed
) -> None:
    verdicts = model.verdicts([model.vector(f) for f in history.features])
    alerted = [v for v in verdicts if v.score >= 70]
    assert alerted and all(v.factors for v in alerted)
    assert all(f.removeprefix("model:") in model.features for v in alerted for f in v.factors)
    assert all(len(v.factors) <= 3 for v in verdicts)


def test_the_thresholds_map_to_70_and_81(model: FraudModel) -> None:
    assert model.score_of(model.alert_margin) == 70
    assert model.score_of(model.block_margin) == 81
    assert model.score_of(model.alert_margin - 1e-9) == 69
    assert model.score_of(-1e9) == 0 and model.score_of(1e9) == 100


@given(st.floats(-50, 50), st.floats(-50, 50))
def test_the_score_never_falls_as_the_margin_rises(a: float, b: float) -> None:
    model = PACKAGED
    low, high = sorted((a, b))
    assert 0 <= model.score_of(low) <= model.score_of(high) <= 100


def test_a_trained_model_holds_its_thresholds_where_its_budget_says(
    model: FraudModel, history: Replayed
) -> None:
    cut = model.info["trained_on"]
    scored = assess_all(history, None, model)[cut:]
    legit = [a for a, fraud in zip(scored, history.fraud[cut:], strict=True) if not fraud]
    assert sum(a.score >= 70 for a in legit) / len(legit) <= 0.002  # budget 0.1%, +rounding
    fraud = [a for a, f in zip(scored, history.fraud[cut:], strict=True) if f]
    assert sum(a.score >= 70 for a in fraud) / len(fraud) >= 0.8


def test_a_model_file_loads_to_the_same_model_and_version(model: FraudModel) -> None:
    text = model.to_json()
    back = FraudModel.from_json(text)
    assert back.version == model.version and back.version.startswith("gbm-")
    assert back.features == model.features
    assert (back.alert_margin, back.block_margin) == (model.alert_margin, model.block_margin)


def test_an_edited_or_foreign_file_is_refused(model: FraudModel) -> None:
    data = json.loads(model.to_json())
    data["alert_margin"] -= 2  # a quieter threshold under the same version: not this model
    with pytest.raises(ModelError, match="version"):
        FraudModel.from_json(json.dumps(data))
    with pytest.raises(ModelError, match="not a fraud model"):
        FraudModel.from_json('{"format": "something else"}')
    data = json.loads(model.to_json())
    data["features"] = data["features"][:-1]
    with pytest.raises(ModelError, match="features"):
        FraudModel.from_json(json.dumps(data))
    with pytest.raises(ModelError, match="cannot read"):
        load_model("/nonexistent/model.json")


def test_the_settings_name_a_model_or_none() -> None:
    assert load_model("none") is None and load_model("") is None
    packaged = load_model("packaged")
    assert packaged is not None and packaged.version == PACKAGED.version


def test_too_little_history_is_refused_rather_than_learned(history: Replayed) -> None:
    few = Replayed(**{k: v[:50] for k, v in vars(history).items()})
    with pytest.raises(ValueError, match="need 100 and 10"):
        train(few)


# -- the engine with a model ------------------------------------------------------------


def _payment(n: int, **fields: object) -> dict[str, object]:
    record: dict[str, object] = {
        "transaction_id": f"t{n}",
        "timestamp": 1_700_000_000 + n * 60,
        "customer_id": "cus_1",
        "amount": 2_500,
        "currency": "EUR",
        "card_fingerprint": "card-1",
        "device_id": "dev-1",
        "merchant_id": "m1",
        "country": "FR",
    }
    record.update(fields)
    return record


def _rules(extra: list[dict[str, object]], **lists: dict[str, list[str]]) -> RuleSet:
    data = json.loads(
        resources.files("paymesh.fraud").joinpath("default_fraud_rules.json").read_text()
    )
    data["rules"] += extra
    data["lists"] = lists or data["lists"]
    return RuleSet.from_data(data)


def test_with_a_model_the_score_is_the_models_and_carries_its_version() -> None:
    model = PACKAGED
    engine = FraudEngine(model=model)
    scored = engine.score(parse_transaction(_payment(1)))
    assert scored.model == model.version
    assert FraudEngine().score(parse_transaction(_payment(1))).model is None


def test_the_allow_list_clears_and_the_block_list_blocks_whatever_the_model_says() -> None:
    model = PACKAGED
    listed = _rules([], allow={"customer_id": ["cus_vip"]}, block={"device_id": ["dev-bad"]})
    engine = FraudEngine(listed, model=model)
    cleared = engine.score(parse_transaction(_payment(1, customer_id="cus_vip")))
    assert (cleared.score, cleared.decision, cleared.factors[0]) == (0, "allow", "allow_list")
    blocked = engine.score(parse_transaction(_payment(2, device_id="dev-bad")))
    assert (blocked.score, blocked.decision, blocked.factors[0]) == (100, "block", "block_list")


def test_a_hard_limit_is_a_floor_under_the_model_and_a_plain_rule_only_informs_it() -> None:
    big = {"name": "over 5,000", "factor": "hard_limit", "weight": 75}
    when = ["amount", ">", 500_000]
    hard = _rules([{**big, "when": when, "override": True}])
    soft = _rules([{**big, "when": when}])
    model = PACKAGED
    order = parse_transaction(_payment(1, amount=600_000))
    held = FraudEngine(hard, model=model).score(order)
    assert (
        held.score >= 75 and held.decision in ("review", "block") and "hard_limit" in held.factors
    )
    informed = FraudEngine(soft, model=model).score(order)
    assert "hard_limit" in informed.factors  # a reason the reviewer sees, but not a floor
    features, _ = FraudEngine(soft).evaluate(order)
    assert informed.score == model.verdict(features).score


def test_an_override_must_be_true_or_false_and_its_factor_its_own() -> None:
    rule = {"name": "x", "factor": "x", "weight": 1, "when": ["amount", ">", 1]}
    with pytest.raises(RuleError, match="override"):
        _rules([{**rule, "override": 1}])
    # The engine knows what overrode by the factors of the rules' assessment.
    with pytest.raises(RuleError, match="own"):
        _rules([{**rule, "override": True}, {**rule, "name": "y"}])


def test_what_the_engine_learns_does_not_depend_on_the_model() -> None:
    stream, _ = generate_episodes(4_000, SEED)
    feedback = outcomes(stream, SEED)
    learned = []
    for model in (None, PACKAGED):
        engine = FraudEngine(model=model)
        list(replay([json.dumps(r) for r in replay_records(stream, feedback)], "jsonl", engine))
        learned.append(engine.snapshot())
    assert learned[0] == learned[1]


@pytest.mark.parametrize("model_process", [False, True], ids=["one process", "model process"])
def test_replay_decides_as_inline_scoring_does_one_by_one(model_process: bool) -> None:
    """In batches, in order, with feedback between them: 3,000 payments are five full batches
    and a part one, and with `model_process` the child scores each while the next is read."""
    stream, _ = generate_episodes(3_000, SEED)
    records = replay_records(stream, outcomes(stream, SEED))
    model = PACKAGED
    lines = [json.dumps(r) for r in records]
    replayed = list(replay(lines, "jsonl", FraudEngine(model=model), model_process))
    inline, engine = [], FraudEngine(model=model)
    for record in records:
        if record.get("outcome"):
            engine.feedback(record["transaction_id"], record["outcome"], record["timestamp"])
        else:
            a = engine.score(parse_transaction(record))
            inline.append([record["transaction_id"], a.score, list(a.factors), a.decision])
    assert [list(r.values()) for r in replayed] == inline
    assert any(r["decision"] != "allow" for r in replayed)  # not a trivially equal stream


def test_the_model_version_is_kept_with_the_payment() -> None:
    from datetime import UTC, datetime

    assessed = FraudAssessment(score=12, factors=("model:amount",), decision="allow", model="gbm-x")
    p = Payment.initiate(
        now=datetime(2026, 12, 4, tzinfo=UTC),
        fraud=assessed,
        id="pay_1",
        merchant_id="m",
        amount=100,
        currency="usd",
        customer_id="c",
        payment_method="pm_card_visa",
        capture_method="automatic",
        connector="stripe",
    )
    assert payment_from_doc(payment_to_doc(p), 1).fraud == assessed
    doc = json.loads(payment_to_doc(p))
    del doc["fraud"]["model"]  # as documents were written before models
    assert payment_from_doc(json.dumps(doc), 1).fraud == replace(assessed, model=None)


def test_store_learning_is_bounded_per_entity() -> None:
    store = FeatureStore(max_entities=10)
    engine = FraudEngine(store=store, model=PACKAGED)
    for n in range(50):
        engine.score(
            parse_transaction(_payment(n, card_fingerprint=f"card-{n}", merchant_id=f"m{n}"))
        )
    assert all(len(entities) <= 10 for entities in store.kinds.values())
