"""Explanations expressed on the master scale and the policy tiers.

The path starts at the portfolio base (calibrated log-odds of the average customer) and adds
the calibrated SHAP contributions one by one, largest absolute first, recording after each
step the grade and tier reached and the grade/tier boundaries crossed. The explanation also
says how far (in log-odds) the customer is from the next better tier, and which
risk-increasing factors stand in the way. A migration compares two attributions of the same
customer.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict
from scipy.special import expit, logit

from features.spec import FeatureGroup, FeatureSpec
from rating.policy import TIER_ORDER, HardRuleHit, RatingPolicy, Tier
from rating.scale import MasterScale


class ExplainError(ValueError):
    """Contributions that do not match the spec, or an unsupported request."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TierBand(_Frozen):
    """A tier as an interval of calibrated log-odds (None = open end)."""

    tier: Tier
    grades: tuple[str, ...]
    lower_log_odds: float | None
    upper_log_odds: float | None


class Step(_Frozen):
    """One factor added on the path from the base to the customer's rating."""

    feature: str
    """Feature name, or `PROTECTED_FACTOR` for all protected features together."""
    group: FeatureGroup
    contribution: float
    log_odds_before: float
    log_odds_after: float
    pd_after: float
    grade_after: str
    tier_after: Tier
    grade_crossings: tuple[str, ...]
    """Grade boundaries crossed, in path order, labelled ``better/worse`` (e.g. ``4/5``)."""
    tier_crossings: tuple[str, ...]
    """Tier boundaries crossed, in path order, labelled ``better/worse`` (e.g. ``low/medium``)."""


class BlockingFactor(_Frozen):
    """A risk-increasing factor standing between the customer and the next better tier."""

    feature: str
    group: FeatureGroup
    contribution: float
    alone_sufficient: bool
    """Removing this factor alone would move the customer into the better tier."""


class Explanation(_Frozen):
    """A rating explained on the grades and tiers."""

    base_log_odds: float
    base_pd: float
    base_grade: str
    base_tier: Tier
    steps: tuple[Step, ...]
    log_odds: float
    pd: float
    """Final PD, floored by the master scale."""
    grade: str
    model_tier: Tier
    """Tier from the PD alone."""
    tier: Tier
    """Tier after hard rules and default status."""
    hard_rules: tuple[HardRuleHit, ...]
    group_contributions: dict[str, float]
    tier_bands: tuple[TierBand, ...]
    grade_boundaries: tuple[float, ...]
    """Inner grade boundaries in log-odds (for charts)."""
    next_better_tier: Tier | None
    distance_to_next_better_tier: float | None
    """Log-odds to remove to enter the next better tier (from the model tier)."""
    blocking_factors: tuple[BlockingFactor, ...]
    blocking_sufficient: bool | None
    """Whether removing all blocking factors together reaches the better tier."""
    in_default: bool = False
    """In default at the rating date: restricted tier whatever the path (``grade`` is the
    PD's band; the rating's grade is the default grade)."""


class RatingState(_Frozen):
    """Where a customer stands in one rating."""

    log_odds: float
    pd: float
    grade: str
    tier: Tier


class FeatureChange(_Frozen):
    """Change in one feature's contribution between two ratings."""

    feature: str
    group: FeatureGroup
    previous: float
    current: float
    delta: float


class GroupChange(_Frozen):
    """Change in one feature group's contribution between two ratings."""

    group: FeatureGroup
    previous: float
    current: float
    delta: float


class Migration(_Frozen):
    """Why a customer moved between two ratings: contribution differences, largest first."""

    previous: RatingState
    current: RatingState
    direction: Literal["upgrade", "downgrade", "unchanged"]
    """By tier; ``unchanged`` when the tier is the same (the grade may still move)."""
    tier_changed: bool
    grade_notches: int
    """Grade index change (positive = worse)."""
    delta_log_odds: float
    base_delta: float
    """Change of the base value (non-zero when the model changed between ratings)."""
    feature_changes: tuple[FeatureChange, ...]
    group_changes: tuple[GroupChange, ...]
    hard_rules_added: tuple[str, ...]
    hard_rules_removed: tuple[str, ...]


def _check_row(contribs: np.ndarray, spec: FeatureSpec, what: str) -> np.ndarray:
    row = np.asarray(contribs, dtype=np.float64)
    n = len(spec.features)
    if row.shape != (n,):
        raise ExplainError(f"{what} must have shape ({n},) in spec order, got {row.shape}")
    if not np.isfinite(row).all():
        raise ExplainError(f"{what} contain non-finite values")
    return row


def _check_base(base: float, what: str) -> float:
    if not math.isfinite(base):
        raise ExplainError(f"{what} must be finite, got {float(base)}")
    return float(base)


PROTECTED_FACTOR = "protected_attributes"
"""Name of the one factor that carries all protected features' contributions together."""


def _factors(
    row: np.ndarray, spec: FeatureSpec
) -> tuple[list[str], list[FeatureGroup], np.ndarray]:
    """Named factors of a contribution row; protected features are merged and never named.

    The merged factor keeps the path additive without naming any protected attribute.
    """
    keep = [j for j, f in enumerate(spec.features) if not f.protected]
    names = [spec.features[j].name for j in keep]
    groups = [spec.features[j].group for j in keep]
    values = [float(row[j]) for j in keep]
    if len(keep) < len(spec.features):
        names.append(PROTECTED_FACTOR)
        groups.append(FeatureGroup.PROFILE)
        values.append(float(row[[f.protected for f in spec.features]].sum()))
    return names, groups, np.array(values, dtype=np.float64)


def _boundary_labels(names: Sequence[str], before: int, after: int) -> tuple[str, ...]:
    if after > before:
        return tuple(f"{names[i]}/{names[i + 1]}" for i in range(before, after))
    return tuple(f"{names[i - 1]}/{names[i]}" for i in range(before, after, -1))


def tier_bands(scale: MasterScale, policy: RatingPolicy) -> tuple[TierBand, ...]:
    """Each tier's interval of calibrated log-odds over the non-default grades."""
    policy.check_scale(scale)
    bands = []
    for position, definition in enumerate(policy.tiers):
        graded = [
            scale.grades[scale.index_of(g)] for g in definition.grades if g != scale.default_grade
        ]
        lower = None if position == 0 else float(logit(graded[0].lower))
        upper = None if graded[-1].upper >= 1.0 else float(logit(graded[-1].upper))
        bands.append(
            TierBand(
                tier=definition.tier,
                grades=definition.grades,
                lower_log_odds=lower,
                upper_log_odds=upper,
            )
        )
    return tuple(bands)


class _Mapper:
    """Log-odds -> (pd, grade index, tier rank), consistent with the master scale."""

    def __init__(self, scale: MasterScale, policy: RatingPolicy) -> None:
        self.scale = scale
        self.names = scale.names
        self.tier_rank = policy.tier_index_of_grade_index(scale)

    def __call__(self, log_odds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pd = self.scale.floor_pd(expit(log_odds))
        grade = self.scale.grade_index(pd)
        return pd, grade, self.tier_rank[grade]


def explain(
    contribs: np.ndarray,
    base: float,
    spec: FeatureSpec,
    scale: MasterScale,
    policy: RatingPolicy,
    *,
    hard_rules: Sequence[HardRuleHit] = (),
    in_default: bool = False,
) -> Explanation:
    """Explain one rating on the master scale and the tiers.

    Args:
        contribs: ``(n_features,)`` calibrated contributions in spec order (no base).
        base: calibrated log-odds of the portfolio average (the scaled SHAP base value).
        spec: the model's feature spec.
        scale: the master scale.
        policy: tiers and hard rules.
        hard_rules: hard rules fired for this customer (they force the restricted tier).
        in_default: the customer is in default at the rating date (restricted tier too).

    Raises:
        ExplainError: if the contributions do not match the spec or are not finite.
    """
    row = _check_row(contribs, spec, "contributions")
    base = _check_base(base, "base")
    mapper = _Mapper(scale, policy)
    tier_names = [t.value for t in TIER_ORDER]

    names, groups, values = _factors(row, spec)
    order = [int(j) for j in np.argsort(-np.abs(values), kind="stable") if values[j] != 0.0]
    path = base + np.cumsum(values[order]) if order else np.empty(0)
    points = np.concatenate([[base], path])
    pds, grades, tiers = mapper(points)

    steps = []
    for i, j in enumerate(order):
        steps.append(
            Step(
                feature=names[j],
                group=groups[j],
                contribution=float(values[j]),
                log_odds_before=float(points[i]),
                log_odds_after=float(points[i + 1]),
                pd_after=float(pds[i + 1]),
                grade_after=mapper.names[grades[i + 1]],
                tier_after=TIER_ORDER[tiers[i + 1]],
                grade_crossings=_boundary_labels(mapper.names, grades[i], grades[i + 1]),
                tier_crossings=_boundary_labels(tier_names, tiers[i], tiers[i + 1]),
            )
        )

    final = float(points[-1])
    model_tier = TIER_ORDER[tiers[-1]]
    bands = tier_bands(scale, policy)
    group_totals = {g.value: 0.0 for g in FeatureGroup}
    for feature, value in zip(spec.features, row, strict=True):
        group_totals[feature.group.value] += float(value)

    blocking: tuple[BlockingFactor, ...] = ()
    next_better, distance, sufficient = None, None, None
    # Only the worst tier is open upwards, so a better tier always has an upper boundary.
    boundary = bands[model_tier.rank - 1].upper_log_odds if model_tier.rank > 0 else None
    if boundary is not None:
        next_better = TIER_ORDER[model_tier.rank - 1]
        distance = max(final - boundary, 0.0)  # >= 0 up to rounding at the boundary
        blocking, sufficient = _blocking(names, groups, values, distance)

    return Explanation(
        base_log_odds=base,
        base_pd=float(pds[0]),
        base_grade=mapper.names[grades[0]],
        base_tier=TIER_ORDER[tiers[0]],
        steps=tuple(steps),
        log_odds=final,
        pd=float(pds[-1]),
        grade=mapper.names[grades[-1]],
        model_tier=model_tier,
        tier=Tier.RESTRICTED if hard_rules or in_default else model_tier,
        hard_rules=tuple(hard_rules),
        group_contributions=group_totals,
        tier_bands=bands,
        grade_boundaries=tuple(float(b) for b in scale.log_odds_boundaries()),
        next_better_tier=next_better,
        distance_to_next_better_tier=distance,
        blocking_factors=blocking,
        blocking_sufficient=sufficient,
        in_default=in_default,
    )


def _blocking(
    names: list[str], groups: list[FeatureGroup], values: np.ndarray, distance: float
) -> tuple[tuple[BlockingFactor, ...], bool]:
    """Largest risk-increasing factors whose joint removal covers ``distance``.

    The PD band is half-open, so entering the better tier needs strictly more than
    ``distance`` removed.
    """
    positive = [int(j) for j in np.argsort(-values, kind="stable") if values[j] > 0.0]
    factors, removed = [], 0.0
    for j in positive:
        factors.append(
            BlockingFactor(
                feature=names[j],
                group=groups[j],
                contribution=float(values[j]),
                alone_sufficient=bool(values[j] > distance),
            )
        )
        removed += float(values[j])
        if removed > distance:
            return tuple(factors), True
    return tuple(factors), False


def explain_migration(
    previous_contribs: np.ndarray,
    current_contribs: np.ndarray,
    spec: FeatureSpec,
    scale: MasterScale,
    policy: RatingPolicy,
    *,
    previous_base: float,
    current_base: float,
    previous_hard_rules: Sequence[HardRuleHit] = (),
    current_hard_rules: Sequence[HardRuleHit] = (),
) -> Migration:
    """Explain a customer's move between two ratings by the SHAP differences.

    Both contribution vectors are calibrated, in the order of ``spec``; when the two ratings
    come from different models, project both onto one spec first (missing features as 0).

    Raises:
        ExplainError: if the contributions do not match the spec or are not finite.
    """
    prev = _check_row(previous_contribs, spec, "previous contributions")
    curr = _check_row(current_contribs, spec, "current contributions")
    prev_base = _check_base(previous_base, "previous base")
    curr_base = _check_base(current_base, "current base")
    mapper = _Mapper(scale, policy)
    log_odds = np.array([prev_base + prev.sum(), curr_base + curr.sum()])
    pds, grades, tiers = mapper(log_odds)
    rules = (previous_hard_rules, current_hard_rules)
    states = [
        RatingState(
            log_odds=float(log_odds[i]),
            pd=float(pds[i]),
            grade=mapper.names[grades[i]],
            tier=Tier.RESTRICTED if rules[i] else TIER_ORDER[tiers[i]],
        )
        for i in range(2)
    ]
    tier_move = states[1].tier.rank - states[0].tier.rank
    direction: Literal["upgrade", "downgrade", "unchanged"] = (
        "downgrade" if tier_move > 0 else "upgrade" if tier_move < 0 else "unchanged"
    )

    names, groups, prev_values = _factors(prev, spec)
    curr_values = _factors(curr, spec)[2]
    delta = curr_values - prev_values
    feature_changes = tuple(
        FeatureChange(
            feature=names[j],
            group=groups[j],
            previous=float(prev_values[j]),
            current=float(curr_values[j]),
            delta=float(delta[j]),
        )
        for j in np.argsort(-np.abs(delta), kind="stable")
        if delta[j] != 0.0
    )
    feature_groups = [f.group for f in spec.features]
    group_changes = []
    for group in FeatureGroup:
        members = np.array([g == group for g in feature_groups], dtype=bool)
        before, after = float(prev[members].sum()), float(curr[members].sum())
        group_changes.append(
            GroupChange(group=group, previous=before, current=after, delta=after - before)
        )
    group_changes.sort(key=lambda c: -abs(c.delta))
    codes = [{h.code for h in r} for r in rules]
    return Migration(
        previous=states[0],
        current=states[1],
        direction=direction,
        tier_changed=tier_move != 0,
        grade_notches=int(grades[1] - grades[0]),
        delta_log_odds=float(log_odds[1] - log_odds[0]),
        base_delta=curr_base - prev_base,
        feature_changes=feature_changes,
        group_changes=tuple(group_changes),
        hard_rules_added=tuple(sorted(codes[1] - codes[0])),
        hard_rules_removed=tuple(sorted(codes[0] - codes[1])),
    )


_TIER_COLOURS = {
    Tier.LOW: "#d8f0d2",
    Tier.MEDIUM: "#fbf3c7",
    Tier.HIGH: "#fbdcc0",
    Tier.RESTRICTED: "#f6c4c4",
}


def render_waterfall(
    explanation: Explanation, fmt: Literal["png", "svg"] = "png", max_steps: int = 10
) -> bytes:
    """Waterfall chart of the explanation path over shaded tier bands.

    Bars run from the base (top) to the final log-odds (bottom), red for risk-increasing and
    green for risk-decreasing factors; steps beyond ``max_steps`` are merged into one bar.
    Rendered with an object-oriented Figure (no pyplot global state: safe in a server).

    Raises:
        ExplainError: for an unknown format or ``max_steps < 1``.
    """
    if fmt not in ("png", "svg"):
        raise ExplainError(f"waterfall format must be 'png' or 'svg', got {fmt!r}")
    if max_steps < 1:
        raise ExplainError(f"max_steps must be >= 1, got {max_steps}")
    bars = [(s.feature, s.log_odds_before, s.contribution) for s in explanation.steps[:max_steps]]
    rest = explanation.steps[max_steps:]
    if rest:
        merged = sum(s.contribution for s in rest)
        bars.append((f"{len(rest)} other factors", rest[0].log_odds_before, merged))
    xs = [explanation.base_log_odds, explanation.log_odds] + [b + c for _, b, c in bars]
    xs += [b for _, b, _ in bars]
    left, right = min(xs), max(xs)
    pad = max(0.5, 0.1 * (right - left))
    left, right = left - pad, right + pad

    height = 1.2 + 0.38 * (len(bars) + 2)
    fig = Figure(figsize=(8.0, height), dpi=100)
    ax = fig.add_subplot()
    for band in explanation.tier_bands:
        lo = left if band.lower_log_odds is None else max(band.lower_log_odds, left)
        hi = right if band.upper_log_odds is None else min(band.upper_log_odds, right)
        if lo < hi:
            ax.axvspan(lo, hi, color=_TIER_COLOURS[band.tier], zorder=0)
            ax.text(
                (lo + hi) / 2,
                1.01,
                band.tier.value,
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=8,
            )
    for boundary in explanation.grade_boundaries:
        if left < boundary < right:
            ax.axvline(boundary, color="grey", linewidth=0.5, linestyle=":", zorder=1)

    labels = ["base"]
    ax.plot([explanation.base_log_odds] * 2, [-0.4, 0.4], color="black", zorder=3)
    for i, (name, start, width) in enumerate(bars, start=1):
        colour = "#c0392b" if width > 0 else "#27ae60"
        ax.barh(i, width, left=start, color=colour, height=0.6, zorder=2)
        labels.append(name)
    final_y = len(bars) + 1
    ax.plot([explanation.log_odds] * 2, [final_y - 0.4, final_y + 0.4], color="black", zorder=3)
    labels.append(f"grade {explanation.grade} ({explanation.pd:.2%})")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(final_y + 0.7, -0.7)
    ax.set_xlim(left, right)
    ax.set_xlabel("calibrated log-odds of default")
    title = f"Tier {explanation.tier.value}"
    if explanation.hard_rules:
        title += " (hard rule: " + ", ".join(h.code for h in explanation.hard_rules) + ")"
    ax.set_title(title, fontsize=10, pad=16)
    fig.tight_layout()
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else None
    # A fixed salt makes SVG element ids, hence the bytes, reproducible.
    with rc_context({"svg.hashsalt": "riskgrade"}):
        fig.savefig(buffer, format=fmt, metadata=metadata)
    return buffer.getvalue()
