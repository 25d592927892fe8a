"""A recorded model decision as the auditor's review shows it (``/review`` in the service).

`decision_detail` gathers, from a stored decision and the served model, everything the review
page shows: inputs, features with their descriptions and contributions, reasons in English and
Chinese, the waterfall, the model and its validation report, the record's own chain check and
the rating chain at its ``as_of``. The waterfall is the stored explanation of an ``/explain``
decision, otherwise it is recomputed from the stored feature row when the served model made the
decision (and the recomputed PD is compared with the recorded one); for a decision of another
bundle it says why it is not available. Nothing here writes.
"""

from __future__ import annotations

import base64
import math
from datetime import date
from typing import Any

import numpy as np

from audit import AuditStore, StoredDecision
from features.catalog import FEATURE_SPEC
from features.spec import FeatureSpec
from management.events import iter_events
from management.judgement import RatingRules, rate
from management.measures import active_measures
from rating.explain import PROTECTED_FACTOR, Explanation, render_waterfall
from rating.model import RatingModel
from rating.policy import DefaultStatus
from rating.reasons import default_reason

SHOWN_METRICS = frozenset({"auc", "gini", "ks", "brier", "ece", "psi"})
"""Validation metrics of the deciding model the review shows."""


def summary(record: StoredDecision) -> dict[str, Any]:
    """The row of a search result (no payload)."""
    response = record.payload.get("response", {})
    return {
        "id": record.id,
        "decision_id": record.decision_id,
        "created_at": record.created_at,
        "kind": record.kind,
        "caller": record.caller,
        "customer_id": record.customer_id,
        "as_of": response.get("as_of"),
        "pd": record.pd,
        "grade": record.grade,
        "tier": record.tier,
        "model_version": record.model_version,
        "bundle_hash": record.bundle_hash,
    }


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _maker(model: RatingModel | None, record: StoredDecision) -> RatingModel | None:
    """``model`` if it made the decision (same bundle), else None."""
    return model if model is not None and model.bundle.bundle_hash == record.bundle_hash else None


def recompute(model: RatingModel, record: StoredDecision) -> tuple[Explanation, np.ndarray, float]:
    """Re-derive the explanation of a stored decision from its stored feature row.

    Args:
        model: the model whose bundle made the decision.
        record: the stored decision.

    Returns:
        The explanation, the contributions (spec order) and the recomputed PD.

    Raises:
        ValueError: if the stored features do not fit the model.
    """
    stored = record.payload.get("features", {})
    names = model.spec.names
    missing = [name for name in names if name not in stored]
    if missing:
        raise ValueError(f"stored features lack {missing[0]}")
    x = np.array(
        [[math.nan if stored[name] is None else float(stored[name]) for name in names]],
        dtype=np.float64,
    )
    flags = {
        name: np.array([float(value)], dtype=np.float64)
        for name, value in record.payload.get("flags", {}).items()
    }
    result = model.score(x, flags)
    return model.explain(result, 0), result.contributions[0], float(result.pd[0])


def _explanation(
    model: RatingModel | None, record: StoredDecision, steps: int
) -> tuple[dict[str, Any], dict[str, float]]:
    """The explanation block of a decision and the per-feature contributions (if known)."""
    response = record.payload.get("response", {})
    maker = _maker(model, record)
    contributions: dict[str, float] = {
        k: float(v) for k, v in (response.get("contributions") or {}).items()
    }
    block: dict[str, Any] = {"available": False, "source": None}
    explanation: Explanation | None = None
    if response.get("explanation") is not None:
        explanation = Explanation.model_validate(response["explanation"])
        block["source"] = "stored"
    if maker is not None:
        try:
            again, contribs, pd_again = recompute(maker, record)
        except ValueError as error:
            block["recompute_problem"] = str(error)
        else:
            block["recomputed_pd"] = pd_again
            block["matches_record"] = math.isclose(pd_again, record.pd, rel_tol=1e-9, abs_tol=1e-12)
            if explanation is None:
                explanation = again
                block["source"] = "recomputed"
            if not contributions:
                contributions = {
                    name: float(value)
                    for name, value in zip(maker.spec.names, contribs, strict=True)
                }
    if explanation is None:
        block["why"] = (
            f"decision made by bundle {record.bundle_hash[:12]}, this service runs "
            f"{model.bundle.bundle_hash[:12] if model is not None else 'no model'}; "
            "the stored record holds no explanation"
        )
        return block, contributions
    svg = render_waterfall(explanation, fmt="svg", max_steps=steps)
    block.update(
        {
            "available": True,
            "svg_base64": base64.b64encode(svg).decode("ascii"),
            **explanation.model_dump(mode="json"),
        }
    )
    return block, contributions


def _report_link(maker: RatingModel | None, record: StoredDecision) -> dict[str, Any]:
    if maker is None:
        return {
            "available": False,
            "why": "the model of this decision is not the one loaded by this service",
        }
    bundle = maker.bundle
    url = (bundle.metadata.lineage or {}).get("validation_report")
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        return {"available": True, "url": url, "external": True}
    if bundle.has_validation_report:
        return {"available": True, "url": f"api/report/{record.bundle_hash}", "external": False}
    return {"available": False, "why": "no validation report in this bundle"}


def _feature_rows(
    model: RatingModel | None, record: StoredDecision, contributions: dict[str, float]
) -> list[dict[str, Any]]:
    features = record.payload.get("features", {})
    spec = model.spec if model is not None else None
    known = set(spec.names) if spec is not None else set()
    rows = []
    for name, value in features.items():
        definition = spec.by_name(name) if spec is not None and name in known else None
        label = definition.category_label(value) if definition is not None else None
        rows.append(
            {
                "name": name,
                "group": definition.group.value if definition else None,
                "description": definition.description if definition else None,
                "description_zh": definition.description_zh if definition else None,
                "unit": definition.unit if definition else None,
                "value": _finite(value),
                "label": label,
                "contribution": contributions.get(name),
            }
        )
    rows.sort(key=lambda row: -abs(row["contribution"] or 0.0))
    return rows


def factor_texts(model: RatingModel | None, record: StoredDecision) -> dict[str, dict[str, str]]:
    """Per factor of a decision, its feature spec's English and Chinese description.

    From the spec of the bundle that made the decision when it is ``model``'s, else from the
    feature catalog (for the features it defines); factors with no description are left out.
    """
    maker = _maker(model, record)
    spec: FeatureSpec = maker.spec if maker is not None else FEATURE_SPEC
    known = set(spec.names)
    texts = {
        name: {"en": spec.by_name(name).description, "zh": spec.by_name(name).description_zh}
        for name in record.payload.get("features", {})
        if name in known
    }
    texts[PROTECTED_FACTOR] = {"en": "Protected attributes", "zh": "受保护属性"}
    return texts


def _reasons(maker: RatingModel | None, record: StoredDecision) -> list[dict[str, Any]]:
    response = record.payload.get("response", {})
    dictionary: dict[str, Any] | None = None
    if maker is not None:
        dictionary = {e.code: e for e in maker.reasons.entries}
        dictionary.update({r.code: r for r in maker.policy.hard_rules})
    if response.get("default") and dictionary is not None:
        status = default_reason(DefaultStatus.model_validate(response["default"]))
        dictionary[status.code] = status
    out = []
    for reason in response.get("reasons", []):
        entry = dictionary.get(reason.get("code")) if dictionary else None
        lang = response.get("lang", "en")
        out.append(
            {
                **reason,
                "text_en": entry.text_en if entry else (reason["text"] if lang == "en" else None),
                "text_zh": entry.text_zh if entry else (reason["text"] if lang == "zh" else None),
            }
        )
    return out


def judgement_of(
    record: StoredDecision, audit: AuditStore, rules: RatingRules
) -> dict[str, Any] | None:
    """The rating chain at the decision's ``as_of``, with every part of it.

    Model grade, the assessment (answers) and the approved override (proposer, approver,
    comments) valid then, the final grade. None when the decision is not a model rating.
    """
    response = record.payload.get("response")
    if not isinstance(response, dict):
        return None
    day = date.fromisoformat(str(response["as_of"]))
    events = iter_events(audit, subject=record.customer_id)
    return rate(record, rules, day, events, active_measures(audit, day)).to_dict()


def decision_detail(
    record: StoredDecision,
    audit: AuditStore,
    model: RatingModel | None,
    steps: int = 10,
    rules: RatingRules | None = None,
) -> dict[str, Any]:
    """Everything the review page shows about one decision.

    Args:
        record: the stored decision.
        audit: the audit store (the record's own chain check, people's judgement).
        model: the served model, or None.
        steps: most steps the waterfall chart draws.
        rules: the served rating rules; None leaves ``judgement`` out (None).
    """
    explanation, contributions = _explanation(model, record, steps)
    check = audit.check_record(record.id)
    response = record.payload.get("response", {})
    maker = _maker(model, record)
    about: dict[str, Any] = {
        "version": record.model_version,
        "bundle_hash": record.bundle_hash,
        "policy_version": record.policy_version,
        "loaded": maker is not None,
        "report": _report_link(maker, record),
    }
    if maker is not None:
        meta = maker.bundle.metadata
        about["trained_at"] = meta.trained_at.isoformat()
        about["metrics"] = {
            k: v for k, v in meta.metrics.items() if k.split(".")[-1] in SHOWN_METRICS
        }
    return {
        "record": {k: v for k, v in record.to_dict().items() if k not in ("payload", "request")},
        "decision": {
            key: response.get(key)
            for key in ("as_of", "score", "model_tier", "policy", "hard_rules", "groups", "lang")
        },
        "inputs": record.request,
        "flags": record.payload.get("flags", {}),
        "features": _feature_rows(model, record, contributions),
        "factors": factor_texts(model, record),
        "reasons": _reasons(maker, record),
        "explanation": explanation,
        "model": about,
        "record_check": {
            "ok": check.ok,
            "hash_ok": check.hash_ok,
            "link_ok": check.link_ok,
            "problem": check.problem,
        },
        "judgement": None if rules is None else judgement_of(record, audit, rules),
    }
