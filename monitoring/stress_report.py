"""The stress-test report: HTML from a jinja2 template (plots embedded), JSON and CSVs."""

from __future__ import annotations

import base64
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import jinja2
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from monitoring.plots import migration_heatmap
from monitoring.report import _matrix, _plain
from monitoring.stress import IMPROVEMENT_CAUSES, StressResult

TEMPLATE: Final[str] = "stress_report.html.j2"
"""The report's template, in ``monitoring/templates`` (shipped in the wheel)."""

MAX_HTML_ROWS: Final[int] = 200
"""Most customers listed in the HTML (the CSV holds every one)."""


def summary(result: StressResult) -> dict[str, Any]:
    """The headline figures: customers, expected defaults base and stressed, moves."""
    row = result.overall()
    return _plain(
        {
            "scenario": result.scenario.name,
            "as_of": result.as_of.isoformat(),
            "model_version": result.model_version,
            "bundle_hash": result.bundle_hash,
            "customers": int(row["customers"]),
            "shocked_customers": int(row["shocked"]),
            "performing": int(row["performing"]),
            "in_default": int(row["customers"] - row["performing"]),
            "base_expected_defaults": float(row["base_expected_defaults"]),
            "stressed_expected_defaults": float(row["stressed_expected_defaults"]),
            "expected_defaults_change": float(row["change"]),
            "expected_defaults_change_pct": float(row["change_pct"]),
            "grade_downgrades": int(row["grade_downgrades"]),
            "tier_downgrades": int(row["tier_downgrades"]),
            "entered_restricted": int(row["entered_restricted"]),
            "improved": result.improved,
            "covenants_checked": result.covenants_checked,
            "base_covenant_breaches": None
            if pd.isna(row["base_breaches"])
            else row["base_breaches"],
            "stressed_covenant_breaches": (
                None if pd.isna(row["stressed_breaches"]) else row["stressed_breaches"]
            ),
            "shocked_records": result.shocked_records,
        }
    )


def to_json(result: StressResult) -> dict[str, Any]:
    """Everything in the report as plain JSON values (customers are in the CSV)."""
    return {
        "summary": summary(result),
        "scenario": result.scenario.model_dump(mode="json"),
        "segments": _plain(result.segments.to_dict(orient="records")),
        "grade_migration": _matrix(result.grade_matrix),
        "tier_migration": _matrix(result.tier_matrix),
        "notes": list(result.notes),
    }


def _png(fig: Figure) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def expected_defaults_bars(segments: pd.DataFrame) -> bytes:
    """Expected defaults, base against stressed, per industry and per region (two panels)."""
    parts = [segments[segments["dimension"] == d] for d in ("industry", "region")]
    heights = [max(len(p), 1) for p in parts]
    fig = Figure(figsize=(8.0, 1.2 + 0.32 * sum(heights)))
    axes = fig.subplots(2, 1, gridspec_kw={"height_ratios": heights})
    for ax, part, title in zip(axes, parts, ("industry", "region"), strict=True):
        positions = np.arange(len(part))
        ax.barh(positions - 0.2, part["base_expected_defaults"], 0.4, label="base", color="#7f8c8d")
        ax.barh(
            positions + 0.2,
            part["stressed_expected_defaults"],
            0.4,
            label="stressed",
            color="#c0392b",
        )
        ax.set_yticks(positions, [str(s) for s in part["segment"]], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"Expected defaults (sum of PD) by {title}", fontsize=10)
        ax.legend(fontsize=8, loc="best")
    axes[-1].set_xlabel("expected defaults among performing customers")
    return _png(fig)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _fmt(value: Any, spec: str = ".4g") -> str:
    if value is None or (np.ndim(value) == 0 and pd.isna(value)):
        return ""
    value = _plain(value)
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def _pct(value: Any) -> str:
    return _fmt(value, "+.1%")


_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_FILTERS: dict[str, Callable[..., str]] = {"fmt": _fmt, "pct": _pct}
_ENVIRONMENT.filters.update(_FILTERS)


def render_html(result: StressResult) -> str:
    """The self-contained HTML report (plots embedded as base64 PNG)."""
    customers = result.customers
    moved = customers[(customers["grade_notches"] != 0) | (customers["tier_notches"] != 0)]
    moved = moved.sort_values(
        ["tier_notches", "grade_notches", "customer_id"], ascending=[False, False, True]
    )
    return _ENVIRONMENT.get_template(TEMPLATE).render(
        summary=summary(result),
        scenario=result.scenario,
        segments=result.segments.to_dict(orient="records"),
        tier_matrix=result.tier_matrix,
        grade_matrix=result.grade_matrix,
        tier_png=_data_uri(
            migration_heatmap(
                result.tier_matrix.counts, "Tier migration", rows="base", columns="stressed"
            )
        ),
        grade_png=_data_uri(
            migration_heatmap(
                result.grade_matrix.counts, "Grade migration", rows="base", columns="stressed"
            )
        ),
        bars_png=_data_uri(expected_defaults_bars(result.segments)),
        moved=moved.head(MAX_HTML_ROWS).to_dict(orient="records"),
        moved_total=len(moved),
        max_rows=MAX_HTML_ROWS,
        notes=result.notes,
        improved=customers[customers["improved"]].head(MAX_HTML_ROWS).to_dict(orient="records"),
        causes=IMPROVEMENT_CAUSES,
    )


def _matrix_csv(matrix: Any) -> str:
    counts = matrix.counts.copy()
    counts.index.name, counts.columns.name = "base", None
    return counts.to_csv()


def write_stress_report(result: StressResult, out_dir: Path | str) -> dict[str, Path]:
    """Write ``report.html``, ``report.json`` and CSVs of customers, segments and matrices.

    Every file is written to a temporary name first and renamed, so a failure leaves no
    half-written file.

    Returns:
        Name -> path of every file written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    contents = {
        "html": ("report.html", render_html(result)),
        "json": (
            "report.json",
            json.dumps(to_json(result), indent=2, ensure_ascii=False) + "\n",
        ),
        "customers": ("customers.csv", result.customers.to_csv(index=False)),
        "segments": ("segments.csv", result.segments.to_csv(index=False)),
        "grade_migration": ("grade_migration.csv", _matrix_csv(result.grade_matrix)),
        "tier_migration": ("tier_migration.csv", _matrix_csv(result.tier_matrix)),
    }
    paths: dict[str, Path] = {}
    for key, (name, text) in contents.items():
        target = out / name
        handle, tmp = tempfile.mkstemp(dir=out, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
            os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is for readers
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        paths[key] = target
    return paths
