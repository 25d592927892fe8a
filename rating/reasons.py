"""Versioned reason dictionary (English and Chinese) and the top adverse reasons of a rating.

Each non-protected feature gets one stable code for its adverse direction, prefixed by its
group (``PRO``, ``FIN``, ``CRD``, ``TRX``). Codes are never reused: building a new dictionary
from a previous one keeps every existing code and numbers new features after the highest code
ever issued in the group.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.spec import FeatureDef, FeatureGroup, FeatureKind, FeatureSpec, RiskDirection
from rating.policy import DefaultStatus, HardRuleHit

GROUP_PREFIX: dict[FeatureGroup, str] = {
    FeatureGroup.PROFILE: "PRO",
    FeatureGroup.FINANCIAL: "FIN",
    FeatureGroup.CREDIT: "CRD",
    FeatureGroup.TRANSACTION: "TRX",
}
HARD_RULE_GROUP = "hard_rule"
DEFAULT_GROUP = "default"
"""Group of the reason given to a customer in default at the rating date."""
MAX_REASONS = 4

DEFAULT_REASONS: dict[str, tuple[str, str, str]] = {
    "dpd90": ("DEF01", "90+ days past due", "逾期90天以上"),
    "write_off": ("DEF02", "written off", "已核销"),
    "insolvency": ("DEF03", "insolvency", "破产"),
}
"""Default type -> (reason code, English, Chinese); codes are stable like the dictionary's."""


class ReasonError(ValueError):
    """Invalid reason dictionary, overrides, or contributions."""


class ReasonText(BaseModel):
    """An explicit reason text overriding the one derived from the spec."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text_en: str = Field(min_length=1)
    text_zh: str = Field(min_length=1)


class ReasonEntry(BaseModel):
    """The reason given when one feature pushes the risk up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str = Field(pattern=r"^[A-Z]{3}[0-9]{2,3}$")
    feature: str
    group: FeatureGroup
    direction: RiskDirection
    """The adverse direction of the feature (``none`` when unknown)."""
    text_en: str
    text_zh: str


class ReasonDictionary(BaseModel):
    """All reason entries of one feature spec, versioned with it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    spec_version: str
    entries: tuple[ReasonEntry, ...]
    retired: tuple[str, ...] = ()
    """Codes issued by earlier versions for features no longer in the spec (never reissued)."""

    @model_validator(mode="after")
    def _unique(self) -> ReasonDictionary:
        codes = [e.code for e in self.entries] + list(self.retired)
        features = [e.feature for e in self.entries]
        for label, values in (("codes", codes), ("features", features)):
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise ReasonError(f"reason dictionary {self.version}: repeated {label} {repeated}")
        return self

    def entry(self, feature: str) -> ReasonEntry | None:
        """The entry of a feature, None if it has none (protected or unknown)."""
        return next((e for e in self.entries if e.feature == feature), None)

    def check_spec(self, spec: FeatureSpec) -> None:
        """Check the dictionary fits a spec: known features, none protected.

        Raises:
            ReasonError: naming the offending feature.
        """
        names = set(spec.names)
        for item in self.entries:
            if item.feature not in names:
                raise ReasonError(f"reason {item.code} names '{item.feature}', not in the spec")
            if spec.by_name(item.feature).protected:
                raise ReasonError(f"reason {item.code} names protected feature '{item.feature}'")


class Reason(BaseModel):
    """One reason given for a rating: a hard rule, the default status or an adverse feature."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    text_en: str
    text_zh: str
    group: str
    """Feature group, ``hard_rule`` or ``default``."""
    feature: str | None = None
    contribution: float | None = None
    """Calibrated log-odds added by the feature (None for hard rules and the default)."""
    value: float | None = None
    """The feature value (None for hard rules and missing values)."""
    label: str | None = None
    """The level a categorical value codes for (e.g. the industry), None for other features."""


_PARENS = re.compile(r"\s*[(（][^()（）]*[)）]")


def _clean(text: str) -> str:
    return _PARENS.sub("", text).strip().rstrip(".。")


def _lower_first(text: str) -> str:
    # Keep acronyms and proper nouns ("DPD", "EBITDA") as written.
    if len(text) > 1 and text[:2].isupper():
        return text
    return text[:1].lower() + text[1:]


def derive_text(feature: FeatureDef) -> ReasonText:
    """Adverse reason text of a feature from its spec descriptions.

    ``up`` features read "High debt ratio" / "资产负债率偏高", ``down`` ones "Low ..." /
    "...偏低"; flags keep their description; categorical and undirected features read
    "Unfavourable ..." / "...不利".
    """
    en, zh = _clean(feature.description), _clean(feature.description_zh)
    if feature.kind is FeatureKind.FLAG:
        return ReasonText(text_en=en[:1].upper() + en[1:], text_zh=zh)
    if feature.kind is FeatureKind.CATEGORICAL or feature.risk_direction is RiskDirection.NONE:
        return ReasonText(text_en=f"Unfavourable {_lower_first(en)}", text_zh=f"{zh}不利")
    if feature.risk_direction is RiskDirection.UP:
        return ReasonText(text_en=f"High {_lower_first(en)}", text_zh=f"{zh}偏高")
    return ReasonText(text_en=f"Low {_lower_first(en)}", text_zh=f"{zh}偏低")


def _code_number(code: str) -> int:
    return int(code[3:])


def build_reason_dictionary(
    spec: FeatureSpec,
    *,
    version: str | None = None,
    overrides: Mapping[str, ReasonText] | None = None,
    previous: ReasonDictionary | None = None,
) -> ReasonDictionary:
    """Build the reason dictionary of a spec.

    Args:
        spec: the model's feature spec; protected features get no entry.
        version: dictionary version, by default ``reasons-<spec version>``.
        overrides: feature name -> explicit texts replacing the derived ones.
        previous: an earlier dictionary whose codes are kept (codes are never reused).

    Raises:
        ReasonError: if an override names a feature that is unknown or protected.
    """
    overrides = dict(overrides or {})
    for name in overrides:
        if name not in spec.names:
            raise ReasonError(f"reason override for '{name}', which is not in the spec")
        if spec.by_name(name).protected:
            raise ReasonError(f"reason override for protected feature '{name}' is not allowed")
    kept = {e.feature: e.code for e in previous.entries} if previous else {}
    issued = list(kept.values()) + list(previous.retired if previous else ())
    next_number = {
        prefix: max((_code_number(c) for c in issued if c.startswith(prefix)), default=0) + 1
        for prefix in GROUP_PREFIX.values()
    }
    entries = []
    for feature in spec.features:
        if feature.protected:
            continue
        code = kept.get(feature.name)
        prefix = GROUP_PREFIX[feature.group]
        if code is None or not code.startswith(prefix):
            code = f"{prefix}{next_number[prefix]:02d}"
            next_number[prefix] += 1
        text = overrides.get(feature.name) or derive_text(feature)
        entries.append(
            ReasonEntry(
                code=code,
                feature=feature.name,
                group=feature.group,
                direction=feature.risk_direction,
                text_en=text.text_en,
                text_zh=text.text_zh,
            )
        )
    used = {e.code for e in entries}
    retired = tuple(sorted(c for c in issued if c not in used))
    return ReasonDictionary(
        version=version or f"reasons-{spec.version}",
        spec_version=spec.version,
        entries=tuple(entries),
        retired=retired,
    )


def entries_by_index(spec: FeatureSpec, dictionary: ReasonDictionary) -> list[ReasonEntry | None]:
    """Per spec feature, its reason entry; None for protected features and features without one."""
    found = {e.feature: e for e in dictionary.entries}
    return [None if f.protected else found.get(f.name) for f in spec.features]


def eligible_mask(entries: Sequence[ReasonEntry | None]) -> np.ndarray:
    """Boolean per spec feature: may be named in a reason (see `entries_by_index`)."""
    return np.array([e is not None for e in entries], dtype=bool)


def top_reason_indices(contribs: np.ndarray, eligible: np.ndarray, k: int) -> np.ndarray:
    """Vectorised top-k adverse features per row.

    Args:
        contribs: ``(n, n_features)`` calibrated contributions (no base column).
        eligible: ``(n_features,)`` features that may be named.
        k: at most this many per row.

    Returns:
        ``(n, k)`` feature indices, largest positive contribution first, ``-1`` padding where
        a row has fewer than ``k`` positive eligible contributions.
    """
    values = np.where(eligible[None, :] & (contribs > 0.0), contribs, -np.inf)
    k = min(k, values.shape[1])
    # Stable sort on the negated values: ties keep the spec order (deterministic).
    order = np.argsort(-values, axis=1, kind="stable")[:, :k]
    picked = np.take_along_axis(values, order, axis=1)
    return np.where(np.isfinite(picked), order, -1)


def _reason_of(
    entry: ReasonEntry, contribution: float, value: float | None, feature: FeatureDef | None
) -> Reason:
    return Reason(
        code=entry.code,
        text_en=entry.text_en,
        text_zh=entry.text_zh,
        group=entry.group.value,
        feature=entry.feature,
        contribution=contribution,
        value=value if value is not None and math.isfinite(value) else None,
        label=feature.category_label(value) if feature is not None else None,
    )


def hard_rule_reason(hit: HardRuleHit) -> Reason:
    """The reason of a fired hard rule."""
    return Reason(code=hit.code, text_en=hit.text_en, text_zh=hit.text_zh, group=HARD_RULE_GROUP)


def default_reason(status: DefaultStatus) -> Reason:
    """The reason of a customer in default at the rating date (since when, and how)."""
    code, kind_en, kind_zh = DEFAULT_REASONS[status.default_type]
    since = status.default_date.isoformat()
    return Reason(
        code=code,
        text_en=f"In default since {since} ({kind_en})",
        text_zh=f"{since}起违约（{kind_zh}）",
        group=DEFAULT_GROUP,
    )


def status_reasons(
    hard_rules: Sequence[HardRuleHit] = (), default: DefaultStatus | None = None
) -> list[Reason]:
    """The reasons that force the restricted tier, in the order given: hard rules, then default."""
    reasons = [hard_rule_reason(hit) for hit in hard_rules]
    if default is not None:
        reasons.append(default_reason(default))
    return reasons


def reasons_from_indices(
    indices: np.ndarray,
    contribs: np.ndarray,
    values: np.ndarray | None,
    entries: Sequence[ReasonEntry | None],
    hard_rules: Sequence[HardRuleHit] = (),
    k: int = MAX_REASONS,
    default: DefaultStatus | None = None,
    features: Sequence[FeatureDef] | None = None,
) -> list[Reason]:
    """Reasons of one row, at most ``k`` in all: hard rules, the default status, then features.

    Hard rules and the default status are all kept even beyond ``k``: a compliance block or a
    default grade is never left unexplained.
    ``features`` (the spec's, in spec order) label categorical values with their level.
    """
    reasons = status_reasons(hard_rules, default)
    room = max(k - len(reasons), 0)
    for j in indices[:room]:
        if j < 0:
            break
        entry = entries[j]
        if entry is None:  # eligible_mask excludes these; a guard for direct callers
            continue
        value = None if values is None else float(values[j])
        feature = None if features is None else features[j]
        reasons.append(_reason_of(entry, float(contribs[j]), value, feature))
    return reasons


def top_reasons(
    contribs: np.ndarray,
    spec: FeatureSpec,
    values: np.ndarray | None = None,
    k: int = MAX_REASONS,
    *,
    dictionary: ReasonDictionary | None = None,
    hard_rules: Sequence[HardRuleHit] = (),
    default: DefaultStatus | None = None,
) -> list[Reason]:
    """The top adverse reasons of one rating.

    Args:
        contribs: ``(n_features,)`` calibrated SHAP contributions in spec order (no base).
        spec: the model's feature spec.
        values: ``(n_features,)`` feature values, reported with each reason.
        k: at most this many reasons (hard rules count, but are never dropped).
        dictionary: reason dictionary; built from ``spec`` when omitted.
        hard_rules: fired hard rules, given first.
        default: the customer's default status at the rating date, given after hard rules.

    Returns:
        Hard-rule reasons, the default reason, then the largest positive (risk-increasing)
        contributions of non-protected features, largest first, up to ``k`` in all.

    Raises:
        ReasonError: if the arrays do not match the spec.
    """
    row = np.asarray(contribs, dtype=np.float64)
    n = len(spec.features)
    if row.shape != (n,):
        raise ReasonError(f"contributions must have shape ({n},) in spec order, got {row.shape}")
    if values is not None and np.shape(values) != (n,):
        raise ReasonError(f"values must have shape ({n},) in spec order, got {np.shape(values)}")
    if k < 0:
        raise ReasonError(f"k must be >= 0, got {k}")
    entries = entries_by_index(spec, dictionary or build_reason_dictionary(spec))
    indices = top_reason_indices(row[None, :], eligible_mask(entries), k)[0]
    value_row = None if values is None else np.asarray(values, dtype=np.float64)
    return reasons_from_indices(
        indices, row, value_row, entries, hard_rules, k, default, features=spec.features
    )
