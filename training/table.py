"""Bring your own table: read a CSV / Parquet / ARFF feature table, map the target, build a spec.

Categorical detection: object, string, category and bool columns become categorical features
(codes = index in the sorted distinct values); every other column must be numeric. Infinite
values become missing. The spec built on the fly has risk direction ``none`` everywhere, so
no monotone constraint is applied.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from features.metrics import auc
from features.spec import FeatureDef, FeatureGroup, FeatureKind, FeatureSpec, RiskDirection
from training.errors import TargetError, TrainingError

_TRUE = {"1", "true", "yes", "y", "t", "default", "bad", "positive"}
_FALSE = {"0", "false", "no", "n", "f", "good", "negative"}


def read_arff(path: Path) -> pd.DataFrame:
    """Read a numeric/nominal ARFF file (``?`` = missing) into a DataFrame.

    Raises:
        TrainingError: if the file has no ``@data`` section or a row has the wrong width.
    """
    names: list[str] = []
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    for i, raw in enumerate(lines):
        line = raw.strip()
        lower = line.lower()
        if lower.startswith("@attribute"):
            match = re.match(
                r"@attribute\s+('([^']*)'|\"([^\"]*)\"|(\S+))", line, flags=re.IGNORECASE
            )
            if match is None:
                raise TrainingError(f"{path}:{i + 1}: unreadable attribute line")
            names.append(next(g for g in match.groups()[1:] if g is not None))
        elif lower.startswith("@data"):
            rows = [r.strip() for r in lines[i + 1 :] if r.strip() and not r.startswith("%")]
            break
    else:
        raise TrainingError(f"{path}: no @data section")
    cells = [r.split(",") for r in rows]
    bad = [k for k, c in enumerate(cells) if len(c) != len(names)]
    if bad:
        raise TrainingError(
            f"{path}: data row {bad[0] + 1} has {len(cells[bad[0]])} values, expected {len(names)}"
        )
    frame = pd.DataFrame(cells, columns=names).replace("?", np.nan)
    return frame.apply(_numeric_if_possible)


def _numeric_if_possible(column: pd.Series) -> pd.Series:
    try:
        return pd.to_numeric(column)
    except (TypeError, ValueError):
        return column


def read_table(path: Path | str) -> pd.DataFrame:
    """Read CSV, Parquet or ARFF by extension.

    Raises:
        TrainingError: if the file does not exist, the extension is unknown or it cannot be
            parsed.
    """
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"table {path} does not exist")
    suffix = path.suffix.lower()
    readers = {".csv": pd.read_csv, ".parquet": pd.read_parquet, ".pq": pd.read_parquet}
    if suffix == ".arff":
        return read_arff(path)
    if suffix not in readers:
        raise TrainingError(
            f"table {path}: unknown format '{suffix}' (use .csv, .parquet or .arff)"
        )
    try:
        return readers[suffix](path)
    except (ValueError, OSError) as error:  # pandas' and pyarrow's parse errors are ValueErrors
        message = " ".join(str(error).split())
        raise TrainingError(f"cannot read table {path}: {message}") from error


def map_target(column: pd.Series, positive: object | None = None) -> np.ndarray:
    """Map a target column onto 0/1.

    ``positive`` names the value meaning "default"; without it 0/1 numbers, booleans and the
    usual words (true/yes/default/bad vs false/no/good) are understood.

    Raises:
        TargetError: for missing target values, a value that cannot be mapped, or one class.
    """
    name = column.name
    if column.isna().any():
        raise TargetError(f"target '{name}' has {int(column.isna().sum())} missing value(s)")
    if positive is not None:
        as_text = column.astype(str)
        if str(positive) not in set(as_text):
            raise TargetError(f"positive value {positive!r} does not occur in target '{name}'")
        y = (as_text == str(positive)).to_numpy(dtype=np.int64)
    elif pd.api.types.is_bool_dtype(column):
        y = column.to_numpy(dtype=np.int64)
    else:
        text = column.astype(str).str.strip().str.lower()
        text = text.str.replace(r"\.0$", "", regex=True)
        unknown = sorted(set(text) - _TRUE - _FALSE)
        if unknown:
            raise TargetError(
                f"target '{name}' has values {unknown[:5]} that are not 0/1, boolean or "
                "true/false words; pass positive=<value meaning default>"
            )
        y = text.isin(_TRUE).to_numpy(dtype=np.int64)
    if np.unique(y).size < 2:
        raise TargetError(f"target '{name}' has a single class ({int(y[0])}); need both 0 and 1")
    return y


def is_categorical(column: pd.Series) -> bool:
    """Object, string, category and bool columns are categorical."""
    return bool(
        pd.api.types.is_object_dtype(column)
        or pd.api.types.is_string_dtype(column)
        or isinstance(column.dtype, pd.CategoricalDtype)
        or pd.api.types.is_bool_dtype(column)
    )


def _feature_name(raw: str, taken: set[str]) -> str:
    name = re.sub(r"[^a-z0-9_]+", "_", raw.strip().lower()).strip("_") or "feature"
    if not name[0].isalpha():
        name = f"f_{name}"
    base, k = name, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def table_spec(frame: pd.DataFrame, columns: list[str], version: str = "byo-1") -> FeatureSpec:
    """A spec for the given columns: direction none, categorical where detected.

    Feature names are the column names made lower snake case (the original name is kept as
    description).
    """
    taken: set[str] = set()
    features = []
    for column in columns:
        categorical = is_categorical(frame[column])
        categories = (
            tuple(sorted(frame[column].dropna().astype(str).unique())) if categorical else ()
        )
        features.append(
            FeatureDef(
                name=_feature_name(str(column), taken),
                group=FeatureGroup.PROFILE,
                description=str(column),
                description_zh=str(column),
                unit="category" if categorical else "value",
                risk_direction=RiskDirection.NONE,
                kind=FeatureKind.CATEGORICAL if categorical else FeatureKind.NUMERIC,
                categories=categories,
            )
        )
    return FeatureSpec(version=version, features=tuple(features))


def table_matrix(frame: pd.DataFrame, columns: list[str], spec: FeatureSpec) -> np.ndarray:
    """Float64 matrix of the columns in spec order (categoricals as codes, inf as NaN).

    Raises:
        TrainingError: naming a non-categorical column that is not numeric.
    """
    out = np.empty((len(frame), len(columns)), dtype=np.float64)
    for j, (column, feature) in enumerate(zip(columns, spec.features, strict=True)):
        values = frame[column]
        if feature.kind is FeatureKind.CATEGORICAL:
            codes = {c: float(i) for i, c in enumerate(feature.categories)}
            mapped = values.map(lambda v, codes=codes: np.nan if pd.isna(v) else codes.get(str(v)))
            out[:, j] = mapped.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            try:
                out[:, j] = pd.to_numeric(values).to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError) as exc:
                raise TrainingError(
                    f"column '{column}' is neither numeric nor categorical"
                ) from exc
    out[np.isinf(out)] = np.nan
    return out


def protected_groups(values: pd.Series, max_levels: int = 10) -> pd.Series:
    """Group labels of a protected column: its values, or quartiles when numeric and many-valued."""
    if pd.api.types.is_numeric_dtype(values) and values.nunique() > max_levels:
        return pd.qcut(values, 4, duplicates="drop").astype(str)
    return values.astype(str)


def fairness_table(
    protected: pd.DataFrame, y: np.ndarray, pd_: np.ndarray, approval_share: float
) -> pd.DataFrame:
    """Per protected column and group: rows, default rate, approval rate, AUC.

    Approval: the ``approval_share`` of rows with the lowest PD are approved (a cut-off shared
    by every group), so the approval-rate ratio between groups shows disparate impact.
    """
    cutoff = np.quantile(pd_, approval_share)
    approved = pd_ <= cutoff
    rows = []
    for column in protected.columns:
        groups = protected_groups(protected[column].reset_index(drop=True))
        for group in sorted(groups.unique()):
            mask = (groups == group).to_numpy()
            rows.append(
                {
                    "attribute": column,
                    "group": group,
                    "rows": int(mask.sum()),
                    "default_rate": float(y[mask].mean()),
                    "approval_rate": float(approved[mask].mean()),
                    "auc": auc(y[mask].astype(float), pd_[mask]),
                }
            )
    return pd.DataFrame(rows)


def fairness_metrics(table: pd.DataFrame) -> dict[str, float]:
    """Flat metrics per protected attribute: approval ratio (min/max), AUC min, max and gap."""
    metrics: dict[str, float] = {}
    for attribute, part in table.groupby("attribute", sort=True):
        rates = part["approval_rate"].to_numpy()
        aucs = part["auc"].dropna().to_numpy()
        key = f"fairness.{attribute}"
        metrics[f"{key}.approval_ratio"] = float(rates.min() / rates.max()) if rates.max() else 0.0
        if aucs.size:
            metrics[f"{key}.auc_min"] = float(aucs.min())
            metrics[f"{key}.auc_max"] = float(aucs.max())
            metrics[f"{key}.auc_gap"] = float(aucs.max() - aucs.min())
    return metrics
