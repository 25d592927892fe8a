"""The columns of the batch scoring output (``riskgrade score --out``), defined once.

One row per customer. The same facts the scoring API answers for that customer: PD, grade,
tiers, the tier's credit policy, the reasons (hard rules first, then the default status, then
the top adverse features) with their texts in one language, and the model that rated it.
``rating.portfolio.chunk_table`` builds the rows in this order; the CLI help lists them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from features.spec import FeatureGroup
from rating.policy import CreditPolicy
from rating.reasons import MAX_REASONS

ColumnType = Literal["string", "date", "float64", "int64", "bool"]


@dataclass(frozen=True)
class OutputColumn:
    """One column of the batch scoring output."""

    name: str
    dtype: ColumnType
    description: str
    nullable: bool = False


POLICY_PREFIX = "policy_"


def _policy_columns() -> tuple[OutputColumn, ...]:
    kinds: dict[type, ColumnType] = {float: "float64", int: "int64", bool: "bool"}
    columns = []
    for name, field in CreditPolicy.model_fields.items():
        assert field.annotation in kinds, f"CreditPolicy.{name}: no output type"
        columns.append(
            OutputColumn(
                POLICY_PREFIX + name,
                kinds[field.annotation],
                f"credit policy of the tier: {name.replace('_', ' ')}",
            )
        )
    return tuple(columns)


def _reason_columns() -> tuple[OutputColumn, ...]:
    columns = []
    for k in range(1, MAX_REASONS + 1):
        columns += [
            OutputColumn(f"reason_{k}", "string", f"code of reason {k}", nullable=True),
            OutputColumn(
                f"reason_{k}_text", "string", f"text of reason {k} (--lang)", nullable=True
            ),
            OutputColumn(
                f"reason_{k}_contribution",
                "float64",
                f"log-odds added by reason {k} (empty for hard rules and default)",
                nullable=True,
            ),
        ]
    return tuple(columns)


SCORE_COLUMNS: tuple[OutputColumn, ...] = (
    OutputColumn("customer_id", "string", "customer"),
    OutputColumn("as_of", "date", "rating date"),
    OutputColumn("pd", "float64", "model PD, floored by the master scale"),
    OutputColumn("score", "int64", "scorecard points of the PD"),
    OutputColumn("grade", "string", "the PD's band, or D when in default"),
    OutputColumn("model_tier", "string", "tier of the PD's band alone"),
    OutputColumn("tier", "string", "tier after hard rules and default status"),
    OutputColumn("in_default", "bool", "in default at the rating date"),
    OutputColumn("default_date", "date", "first default on or before as_of", nullable=True),
    OutputColumn("default_type", "string", "dpd90, write_off or insolvency", nullable=True),
    OutputColumn("hard_rules", "string", "hard-rule codes fired, ';'-joined"),
    *_reason_columns(),
    *(
        OutputColumn(f"group_{g.value}", "float64", f"log-odds of the {g.value} group")
        for g in FeatureGroup
    ),
    *_policy_columns(),
    OutputColumn("lang", "string", "language of the reason texts (en or zh)"),
    OutputColumn("model_version", "string", "version of the model that rated"),
    OutputColumn("bundle_hash", "string", "SHA-256 of the model bundle's manifest"),
    OutputColumn("policy_version", "string", "policy version + policy file hash"),
)
"""Every column of ``riskgrade score --out``, in order."""

SCORE_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in SCORE_COLUMNS)


_REASON_K = re.compile(r"(reason)[_ ]([0-9]+)")


def columns_help() -> str:
    """The output columns as one help paragraph (``name``: description; ...)."""
    parts = []
    for column in SCORE_COLUMNS:
        found = _REASON_K.search(column.name)
        if found and found.group(2) != "1":
            continue
        name = _REASON_K.sub(rf"\1_1..{MAX_REASONS}", column.name)
        parts.append(f"{name}: {_REASON_K.sub('each reason', column.description)}")
    return "; ".join(parts)


JUDGEMENT_COLUMNS: tuple[OutputColumn, ...] = (
    OutputColumn("insufficient_data", "bool", "below the data-sufficiency rule at as_of"),
    OutputColumn("provisional", "bool", "insufficient data and no expert rating: tier provisional"),
    OutputColumn("sufficiency_reasons", "string", "data-sufficiency reason codes, ';'-joined"),
    OutputColumn("model_grade", "string", "the model's grade (grade)"),
    OutputColumn("qualitative_notches", "int64", "notches of the valid qualitative assessment"),
    OutputColumn("assessment_id", "string", "the assessment applied", nullable=True),
    OutputColumn("override_id", "string", "the approved override or expert rating", nullable=True),
    OutputColumn("final_grade", "string", "grade after assessment and override"),
    OutputColumn("status", "string", "customer status at as_of (normal ... exited)"),
    OutputColumn("measures", "string", "emergency measures that applied, ';'-joined"),
)
"""Columns of the rating chain, after ``grade`` in the judged output (``tier`` and ``policy_*``
are then the final grade's)."""


def judged_column_names() -> tuple[str, ...]:
    """Columns of ``riskgrade score --out`` with the rating chain applied, in order."""
    names = list(SCORE_COLUMN_NAMES)
    at = names.index("grade") + 1
    return (*names[:at], *(c.name for c in JUDGEMENT_COLUMNS), *names[at:])
