"""Detection quality of scores on a labelled stream (see `generator`), per attack type.

For one attack type the positives are its transactions and the negatives the
legitimate ones (`legit` and the look-alikes); other attacks are left out of
that type's figures (an alert does not say which attack it saw). An alert is a
score >= `alert` (70: the `fraud.alert` threshold); blocked is decision `block`.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from paymesh.fraud.generator import ATTACKS, DAY, FEEDBACK_DELAY_DAYS, LOOKALIKES

ALERT = 70


def average_precision(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """Area under the precision-recall curve, as average precision.

    AP = sum over thresholds t, the distinct scores from high to low, of
    (R(t) - R(t_prev)) * P(t), where P(t) and R(t) are the precision and recall of
    "alert when score >= t". Tied scores form one step (as scikit-learn's
    `average_precision_score`). NaN without positives.
    """
    total = sum(1 for p in positive if p)
    if total == 0:
        return math.nan
    pairs = sorted(zip(scores, positive, strict=True), key=lambda pair: -pair[0])
    ap = recall_before = 0.0
    tp = fp = i = 0
    while i < len(pairs):
        threshold = pairs[i][0]
        while i < len(pairs) and pairs[i][0] == threshold:
            if pairs[i][1]:
                tp += 1
            else:
                fp += 1
            i += 1
        recall = tp / total
        ap += (recall - recall_before) * tp / (tp + fp)
        recall_before = recall
    return ap


def _share(part: int, whole: int) -> float:
    return part / whole if whole else math.nan


def _detection(
    scores: Sequence[int], positive: Sequence[bool], negative: Sequence[bool], alert: int
) -> dict[str, float]:
    kept = [(s, p) for s, p, n in zip(scores, positive, negative, strict=True) if p or n]
    tp = sum(1 for s, p in kept if p and s >= alert)
    fp = sum(1 for s, p in kept if not p and s >= alert)
    return {
        "transactions": sum(1 for _, p in kept if p),
        "precision": _share(tp, tp + fp),
        "recall": _share(tp, sum(1 for _, p in kept if p)),
        "pr_auc": average_precision([s for s, _ in kept], [p for _, p in kept]),
    }


def evaluate(
    labels: Sequence[str],
    episodes: Sequence[str],
    scores: Sequence[int],
    decisions: Sequence[str],
    alert: int = ALERT,
    timestamps: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Figures for a stream: `labels`, `episodes` ("" if none), `scores`, `decisions` aligned.

    With `timestamps`, also `recall_after_delay` per attack: the recall among the
    episode's transactions made `FEEDBACK_DELAY_DAYS` or more after its first one. A
    compromised terminal shows only in the disputes of its earlier payments, so this is
    the share of it that can be caught at all.

    Per attack: precision, recall and PR-AUC against the legitimate payments, share
    blocked, episodes caught, and attempts (the episode's own transactions, in time
    order) before its first alert. Per look-alike and for all legitimate payments:
    share alerted and share blocked.
    """
    benign = [label == "legit" or label.startswith("lookalike_") for label in labels]
    report: dict[str, Any] = {"alert": alert, "attacks": {}, "lookalikes": {}}
    runs: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for label, episode, score in zip(labels, episodes, scores, strict=True):
        if episode:
            runs[label][episode].append(score >= alert)
    for attack in ATTACKS:
        positive = [label == attack for label in labels]
        if not any(positive):
            continue
        figures: dict[str, Any] = _detection(scores, positive, benign, alert)
        blocked = sum(1 for p, d in zip(positive, decisions, strict=True) if p and d == "block")
        figures["blocked"] = _share(blocked, figures["transactions"])
        flags = list(runs[attack].values())
        before = [run.index(True) for run in flags if any(run)]
        figures["episodes"] = len(flags)
        figures["episodes_caught"] = _share(len(before), len(flags))
        figures["attempts_before_alert_mean"] = statistics.fmean(before) if before else math.nan
        figures["attempts_before_alert_median"] = statistics.median(before) if before else math.nan
        if timestamps is not None:
            figures["recall_after_delay"] = _recall_after_delay(
                attack, labels, episodes, scores, timestamps, alert
            )
        report["attacks"][attack] = figures
    any_attack = [label in ATTACKS for label in labels]
    report["all_attacks"] = _detection(scores, any_attack, benign, alert)
    alerts = sum(1 for s in scores if s >= alert)
    report["alerts_per_1000"] = _share(alerts * 1000, len(scores))
    for group in (*LOOKALIKES, "legit", "legitimate"):
        members = benign if group == "legitimate" else [label == group for label in labels]
        n = sum(members)
        alerted = sum(1 for m, s in zip(members, scores, strict=True) if m and s >= alert)
        blocked = sum(1 for m, d in zip(members, decisions, strict=True) if m and d == "block")
        rates = {"transactions": n, "alerted": _share(alerted, n), "blocked": _share(blocked, n)}
        if group in LOOKALIKES:
            report["lookalikes"][group] = rates
        else:
            report[group] = rates
    return report


def _recall_after_delay(
    attack: str,
    labels: Sequence[str],
    episodes: Sequence[str],
    scores: Sequence[int],
    timestamps: Sequence[float],
    alert: int,
) -> float:
    began: dict[str, float] = {}
    for label, episode, ts in zip(labels, episodes, timestamps, strict=True):
        if label == attack and episode:
            began[episode] = min(ts, began.get(episode, ts))
    late = [
        score >= alert
        for label, episode, score, ts in zip(labels, episodes, scores, timestamps, strict=True)
        if label == attack and episode and ts >= began[episode] + FEEDBACK_DELAY_DAYS * DAY
    ]
    return _share(sum(late), len(late))
