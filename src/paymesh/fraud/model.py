"""A learned fraud model beside the rules: gradient-boosted trees (LightGBM), explained per score.

The model reads the same features the rules do (`FeatureStore.features`, plus the rules'
own score as `rules_score`) and gives the log-odds that a payment is fraud. That margin
becomes paymesh's 0-100 score through two thresholds chosen when the model was trained
(`train`): `alert_margin` maps to 70 (alert, review) and `block_margin` to 81 (block), so a
model slots in where the rules' score was, with the same meaning of 70 and 80.

Why LightGBM: trees take features as they come (absent ones as missing, no scaling), its
text model format loads without unpickling code, and it predicts one row in tens of
microseconds. Each score is explained by the features that pushed it up, by Saabas' method:
along each tree's decision path, the change of the node value at a split is credited to the
split's feature. It sums exactly to the margin and, precomputed per leaf, costs one table
lookup per tree (LightGBM's own SHAP values, exact but ~1.5 ms a row, are too slow inline).

A model file is JSON: the LightGBM model text, the feature names in input order, the two
thresholds, and what it was trained and validated on. Its version is a digest of the model
and thresholds: the same file is the same version wherever it is loaded.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix

FORMAT = "paymesh.fraud.model/1"
ALERT_SCORE, BLOCK_SCORE = 70, 81
# Below the alert threshold the score falls 70 points over this many nats of log-odds.
_BELOW_ALERT = 6.0
# A factor names a feature that raised the margin by at least this much (nats).
_FACTOR_MIN = 0.25
_FACTORS = 3


class ModelError(ValueError):
    """A file that is not a fraud model this version can load."""


@dataclass(frozen=True)
class Verdict:
    """What the model says of one payment: its score (0-100), margin and top features."""

    score: int
    margin: float
    factors: tuple[str, ...]


@dataclass
class FraudModel:
    booster: Any  # lightgbm.Booster
    features: tuple[str, ...]
    alert_margin: float
    block_margin: float
    info: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    # Per leaf (rows, in LightGBM's tree order) the margin change credited to each feature,
    # with the leaf's value in the last column; `offsets[t]` is tree t's first row.
    _credits: Any = None
    _offsets: Any = None
    _one_row: OneRowLeaves = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.alert_margin < self.block_margin:
            raise ModelError("thresholds: the alert margin must be below the block margin")
        self._credits, self._offsets = _leaf_credits(self.booster, len(self.features))
        self.version = self.version or _version(self.booster, self.alert_margin, self.block_margin)
        self._one_row = OneRowLeaves.open(self.booster, len(self.features), len(self._offsets))

    # -- scoring -------------------------------------------------------------------------

    def vector(self, features: Mapping[str, float]) -> list[float]:
        get, nan = features.get, math.nan
        return [get(name, nan) for name in self.features]

    def verdict(self, features: Mapping[str, float]) -> Verdict:
        """One payment's verdict (inline): the same as `verdicts` gives for it in a batch."""
        row = self.vector(features)
        leaves = self._one_row.leaves(row)
        credit = self._credits[leaves + self._offsets].sum(axis=0).tolist()
        # Plain Python from here: for one row, numpy's per-call cost is most of the time.
        named = [(c, i) for i, c in enumerate(credit[:-1]) if c >= _FACTOR_MIN and row[i] == row[i]]
        named.sort(key=lambda pair: (-pair[0], pair[1]))
        names = self.features
        factors = tuple(f"model:{names[i]}" for _, i in named[:_FACTORS])
        return Verdict(self.score_of(credit[-1]), credit[-1], factors)

    def verdicts(self, rows: Sequence[Sequence[float]] | np.ndarray[Any, Any]) -> list[Verdict]:
        """Score many rows at once (a list of lists or a 2-D array): one call into LightGBM."""
        if len(rows) == 0:
            return []
        # One thread: inline, a row at a time, an OpenMP team would only cost.
        x = np.asarray(rows, dtype=np.float64)
        leaves = self.booster.predict(x, pred_leaf=True, num_threads=1)
        leaves = np.asarray(leaves, dtype=np.int64).reshape(len(rows), -1) + self._offsets
        credited = _sum_of_rows(self._credits, leaves)
        margins = credited[:, -1].tolist()
        # Only features the payment has are named: a missing one can move the margin too
        # (trees send it down one side), but "card_home_km" on a payment without a place
        # would send a reviewer looking for a distance that is not there.
        named = np.where(np.isnan(x) | (credited[:, :-1] < _FACTOR_MIN), -np.inf, credited[:, :-1])
        top = np.argsort(-named, axis=1, kind="stable")[:, :_FACTORS]
        top_credit = np.take_along_axis(named, top, axis=1).tolist()
        names = self.features
        return [
            Verdict(
                self.score_of(margin),
                margin,
                tuple(f"model:{names[i]}" for i, c in zip(ids, credit, strict=True) if c > -np.inf),
            )
            for margin, ids, credit in zip(margins, top.tolist(), top_credit, strict=True)
        ]

    def score_of(self, margin: float) -> int:
        """The 0-100 score of a margin: 70 at `alert_margin`, 81 at `block_margin`."""
        a, b = self.alert_margin, self.block_margin
        if margin >= a:
            value = ALERT_SCORE + (margin - a) * (BLOCK_SCORE - ALERT_SCORE) / (b - a)
        else:
            value = ALERT_SCORE + (margin - a) * ALERT_SCORE / _BELOW_ALERT
        return max(0, min(100, math.floor(value)))

    # -- files ---------------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "version": self.version,
                "features": list(self.features),
                "alert_margin": self.alert_margin,
                "block_margin": self.block_margin,
                "info": self.info,
                "lightgbm": self.booster.model_to_string(),
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> FraudModel:
        import lightgbm

        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ModelError(f"not a fraud model ({FORMAT})")
            booster = lightgbm.Booster(model_str=data["lightgbm"])
            features = tuple(str(name) for name in data["features"])
            if booster.num_feature() != len(features):
                raise ModelError("features: the model and its feature list disagree")
            model = cls(
                booster,
                features,
                float(data["alert_margin"]),
                float(data["block_margin"]),
                dict(data.get("info") or {}),
            )
        except ModelError:
            raise
        except (ValueError, KeyError, TypeError, lightgbm.basic.LightGBMError) as exc:
            raise ModelError(f"cannot load the fraud model: {exc}") from exc
        if data.get("version") and data["version"] != model.version:
            raise ModelError("version: the file's version does not match its model (edited?)")
        return model

    @classmethod
    def load(cls, path: str | Path) -> FraudModel:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    @classmethod
    def packaged(cls) -> FraudModel:
        """The model paymesh ships, trained on its own generator's data (see the README)."""
        text = resources.files("paymesh.fraud").joinpath("default_fraud_model.json").read_text()
        return cls.from_json(text)


class OneRowLeaves:
    """One row's leaf in every tree through LightGBM's single-row fast C API.

    `Booster.predict` costs about 54 µs of CPU for one row here (its array made included),
    nearly all of it the Python package's own work before the trees (the parameter string
    parsed, the array checked and converted, a predictor set up); the trees take a few.
    `LGBM_BoosterPredictForMatSingleRowFast` does that set-up once (`...FastInit`) and then
    only walks the trees: about 9 µs. It is
    LightGBM's documented C API, reached through the library the package has loaded; the
    same predictor code, so the same leaves (a test compares them with `predict`'s).
    The input and output buffers are this object's, so one call at a time (a lock).
    """

    _PREDICT_LEAF_INDEX = 2  # C_API_PREDICT_LEAF_INDEX
    _FLOAT64 = 1  # C_API_DTYPE_FLOAT64

    def __init__(
        self, lib: Any, handle: ctypes.c_void_p, booster: Any, n_features: int, n_trees: int
    ) -> None:
        self._lib = lib
        self._handle = handle
        self._booster = booster  # the config points into it: it must outlive the handle
        self._row: Any = (ctypes.c_double * n_features)()
        self._out = np.empty(n_trees, dtype=np.float64)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._out_len = ctypes.c_int64()
        self._predict = lib.LGBM_BoosterPredictForMatSingleRowFast
        self._lock = threading.Lock()

    @classmethod
    def open(cls, booster: Any, n_features: int, n_trees: int) -> OneRowLeaves:
        """The fast path for this booster (the pinned LightGBM has it since 3.0)."""
        from lightgbm.libpath import _LIB

        handle = ctypes.c_void_p()
        status = _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle,
            ctypes.c_int(cls._PREDICT_LEAF_INDEX),
            ctypes.c_int(0),  # from the first iteration
            ctypes.c_int(-1),  # to the last
            ctypes.c_int(cls._FLOAT64),
            ctypes.c_int32(n_features),
            ctypes.c_char_p(b"num_threads=1"),
            ctypes.byref(handle),
        )
        if status != 0:
            raise ModelError("LightGBM could not set up its single-row prediction")
        return cls(_LIB, handle, booster, n_features, n_trees)

    def leaves(self, row: list[float]) -> Any:
        """Each tree's leaf index for `row` (floats, NaN for missing), as a new int64 array."""
        with self._lock:
            self._row[:] = row
            status = self._predict(
                self._handle, self._row, ctypes.byref(self._out_len), self._out_ptr
            )
            if status != 0 or self._out_len.value != len(self._out):
                raise ModelError("LightGBM's single-row prediction failed")
            return self._out.astype(np.int64)  # a copy: the buffer is the next call's

    def __del__(self) -> None:
        handle, self._handle = self._handle, ctypes.c_void_p()
        if handle:
            self._lib.LGBM_FastConfigFree(handle)


def _sum_of_rows(table: Any, picks: Any) -> Any:
    """`table[picks].sum(axis=1)` (row i: the sum of the table's rows `picks[i]`, added in
    `picks[i]`'s order), without building the rows x picks x columns array.

    As a product: a matrix of ones where row i picks its rows, times the table, which scipy's
    sparse-times-dense kernel runs row by row, adding each picked row in turn: the same
    additions in the same order as a loop over the picks, so the same bits (the inline
    `verdict` sums one row's picks in that order too). 8.7 µs a payment against 16.4 for
    numpy's loop over the trees, batches of 512, 300 trees (`benchmarks/fraud_replay.py`).
    """
    n, k = picks.shape
    ones = csr_matrix(
        (np.ones(n * k), picks.ravel(), np.arange(0, n * k + 1, k)), shape=(n, table.shape[0])
    )
    return np.asarray(ones @ table)


def _version(booster: Any, alert: float, block: float) -> str:
    digest = hashlib.sha256(booster.model_to_string().encode())
    digest.update(f"{alert!r}/{block!r}".encode())
    return f"gbm-{digest.hexdigest()[:12]}"


def _leaf_credits(booster: Any, n_features: int) -> tuple[Any, Any]:
    """Saabas credits per leaf of every tree (see the module docstring), as one table."""
    rows: list[list[float]] = []
    offsets: list[int] = []
    for tree in booster.dump_model()["tree_info"]:
        offsets.append(len(rows))
        leaves: dict[int, list[float]] = {}
        _walk(tree["tree_structure"], [0.0] * (n_features + 1), None, leaves, n_features)
        for index in range(len(leaves)):
            rows.append(leaves[index])
    return np.asarray(rows, dtype=np.float64), np.asarray(offsets, dtype=np.int64)


def _walk(
    node: dict[str, Any],
    credit: list[float],
    parent: tuple[int, float] | None,
    leaves: dict[int, list[float]],
    n_features: int,
) -> None:
    leaf = "split_feature" not in node  # a tree of one leaf has no leaf_index either
    value = float(node["leaf_value"] if leaf else node["internal_value"])
    credit = list(credit)
    if parent is None:
        credit[n_features] = value  # the root's value: where every path starts
    else:
        feature, parent_value = parent
        credit[feature] += value - parent_value
        credit[n_features] += value - parent_value
    if leaf:
        leaves[int(node.get("leaf_index", 0))] = credit
        return
    for side in ("left_child", "right_child"):
        _walk(node[side], credit, (int(node["split_feature"]), value), leaves, n_features)
