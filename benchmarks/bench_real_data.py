"""Real credit tables: our ``auto`` training against plain logistic regression and plain LightGBM.

Every table is a (file, target, positive) triple, optionally with columns to drop and protected
columns (left out of every model). In one run and on the same 5 stratified folds the script
measures the cross-validated AUC of

- plain logistic regression (median imputation, standardisation, one-hot categoricals),
- plain LightGBM (400 trees, learning rate 0.03, library defaults otherwise),
- ours: ``train_table`` with the params.yaml defaults (``family: auto``, rule ``one_se``), whose
  ``cv=5`` re-runs the whole procedure in each fold, family choice included (nested CV),

and writes ``benchmarks/results/real_data.json`` with the three figures, the family chosen on
the full table and in each fold, and whether ours reaches the better of the two plain models.

Usage: ``uv run python benchmarks/bench_real_data.py`` (the public tables in
``../shared/datasets``), or ``--table FILE:TARGET[:POSITIVE]`` (repeatable) / ``--tables
tables.yaml`` (a list of ``{file, target, positive, drop, protected}``) for your own tables;
``--out`` names the results file, written again after every table (``complete`` and ``note``
say whether tables are missing); ``--jobs N`` measures N tables in parallel processes. For
development, ``--folds K`` and ``--rows N`` (a seeded, stratified subsample of each table) give
a fast reduced run, recorded in ``method``; write it elsewhere than the committed results.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from features.metrics import auc
from features.spec import FeatureKind
from training.config import RegistryConfig, TrainConfig
from training.errors import TrainingError
from training.family import FAMILIES
from training.pipeline import train_table
from training.table import map_target, read_table, table_matrix, table_spec

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets"
RESULTS = ROOT / "benchmarks" / "results"
FOLDS = 5
PLAIN_LGBM: dict[str, Any] = {"n_estimators": 400, "learning_rate": 0.03}


@dataclass(frozen=True)
class Table:
    """One benchmark table: file, target column, the target value meaning default."""

    file: Path
    target: str
    positive: str | None = None
    drop: tuple[str, ...] = ()
    protected: tuple[str, ...] = ()
    name: str = field(default="")

    @property
    def label(self) -> str:
        """Name of the table in the results."""
        return self.name or self.file.stem


PUBLIC = [
    Table(
        DATA / "taiwan_credit_default" / "UCI_Credit_Card.csv",
        "Y",
        "1",
        drop=("ID",),
        protected=("X2", "X4", "X5"),  # SEX, MARRIAGE, AGE
        name="taiwan",
    ),
    Table(DATA / "polish_bankruptcy" / "1year.arff", "bankruptcy", "1", name="polish_year1"),
    Table(DATA / "polish_bankruptcy" / "5year.arff", "bankruptcy", "1", name="polish_year5"),
]


def parse_table(text: str) -> Table:
    """``FILE:TARGET[:POSITIVE]``."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise argparse.ArgumentTypeError(f"--table {text!r}: expected FILE:TARGET[:POSITIVE]")
    return Table(Path(parts[0]), parts[1], parts[2] if len(parts) == 3 else None)


def read_tables(path: Path) -> list[Table]:
    """A YAML list of ``{file, target, positive, drop, protected, name}``."""
    entries = yaml.safe_load(path.read_text())
    if not isinstance(entries, list) or not entries:
        raise TrainingError(f"{path}: expected a non-empty list of tables")
    tables = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"file", "target"} <= set(entry):
            raise TrainingError(f"{path}: entry {i} needs at least 'file' and 'target'")
        unknown = set(entry) - {"file", "target", "positive", "drop", "protected", "name"}
        if unknown:
            raise TrainingError(f"{path}: entry {i} has unknown key(s) {sorted(unknown)}")
        positive = entry.get("positive")
        tables.append(
            Table(
                Path(entry["file"]),
                str(entry["target"]),
                None if positive is None else str(positive),
                tuple(entry.get("drop", ())),
                tuple(entry.get("protected", ())),
                str(entry.get("name", "")),
            )
        )
    return tables


def _plain_aucs(
    x: np.ndarray, y: np.ndarray, categorical: list[int], folds: list, seed: int
) -> tuple[list[float], list[float]]:
    """Fold AUCs of plain logistic regression and plain LightGBM on the same folds."""
    numeric = [j for j in range(x.shape[1]) if j not in categorical]
    steps = [("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric)]
    if categorical:
        steps.append(
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                categorical,
            )
        )
    lr_auc, lgbm_auc = [], []
    for train, test in folds:
        lr = make_pipeline(ColumnTransformer(steps), LogisticRegression(max_iter=5000))
        lr.fit(x[train], y[train])
        lr_auc.append(auc(y[test].astype(float), lr.predict_proba(x[test])[:, 1]))
        data = lgb.Dataset(x[train], y[train], categorical_feature=categorical or "auto")
        params = {"objective": "binary", "verbosity": -1, "seed": seed, "num_threads": 1}
        params["learning_rate"] = PLAIN_LGBM["learning_rate"]
        booster = lgb.train(params, data, num_boost_round=PLAIN_LGBM["n_estimators"])
        margin = np.asarray(booster.predict(x[test], raw_score=True))
        lgbm_auc.append(auc(y[test].astype(float), margin))
    return lr_auc, lgbm_auc


def subsample(frame: Any, target: str, positive: str | None, rows: int, seed: int) -> Any:
    """A seeded subsample of ``rows`` rows stratified on the target (the frame if smaller)."""
    if rows >= len(frame):
        return frame
    y = map_target(frame[target], positive)
    keep, _ = train_test_split(
        np.arange(len(frame)), train_size=rows, stratify=y, random_state=seed
    )
    return frame.iloc[np.sort(keep)].reset_index(drop=True)


def run_table(
    table: Table, config: TrainConfig, scratch: Path, folds: int = FOLDS, rows: int | None = None
) -> dict[str, object]:
    """The three figures of one table (same folds), the families chosen and the verdict."""
    start = time.perf_counter()
    frame = read_table(table.file)
    if table.target not in frame.columns:
        raise TrainingError(f"{table.file}: no target column '{table.target}'")
    if rows is not None:
        frame = subsample(frame, table.target, table.positive, rows, config.seed)
    y = map_target(frame[table.target], table.positive)
    excluded = {table.target, *table.drop, *table.protected}
    columns = [c for c in frame.columns if c not in excluded]
    spec = table_spec(frame, columns)
    x = table_matrix(frame, columns, spec)
    categorical = [j for j, f in enumerate(spec.features) if f.kind is FeatureKind.CATEGORICAL]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=config.seed)
    lr_auc, lgbm_auc = _plain_aucs(x, y, categorical, list(splitter.split(x, y)), config.seed)
    result = train_table(
        frame,
        table.target,
        positive=table.positive,
        cv=folds,
        drop=list(table.drop),
        protected=list(table.protected),
        config=config,
        out_dir=scratch / table.label,
    )
    m = result.metrics
    ours = float(m["cv.auc_mean"])
    best_plain = max(float(np.mean(lr_auc)), float(np.mean(lgbm_auc)))
    return {
        "file": str(table.file),
        "target": table.target,
        "positive": table.positive,
        "rows": len(y),
        "default_rate": float(np.mean(y)),
        "features": len(columns),
        "cv_auc": {
            "plain_logistic_regression": float(np.mean(lr_auc)),
            "plain_lightgbm": float(np.mean(lgbm_auc)),
            "ours": ours,
        },
        "cv_auc_std": {
            "plain_logistic_regression": float(np.std(lr_auc)),
            "plain_lightgbm": float(np.std(lgbm_auc)),
            "ours": float(m["cv.auc_std"]),
        },
        "ours_minus_best_plain": ours - best_plain,
        "meets_goal": ours >= best_plain,
        "family": m["model.family"],
        "blend_weight": m["model.blend_weight"],
        "family_cv_auc": {f: m.get(f"cv.{f}.auc_mean") for f in FAMILIES},
        "family_cv_gain_over_plain": {
            f: [m.get(f"cv.{f}.auc_gain"), m.get(f"cv.{f}.auc_gain_se")]
            for f in FAMILIES
            if f"cv.{f}.auc_gain" in m
        },
        "families_per_fold": str(m["cv.families"]).split(","),
        "lgbm_trees": m["model.lgbm_trees"],
        "holdout_test_auc": m["test.auc"],
        "fairness": {k: v for k, v in m.items() if k.startswith("fairness.")},
        "seconds": round(time.perf_counter() - start, 1),
    }


def _write(path: Path, out: dict[str, Any], expected: int) -> None:
    """Write the results so far; ``complete`` and ``note`` say whether tables are missing."""
    done = len(out["tables"])
    out["complete"] = done == expected
    out["note"] = "" if done == expected else f"partial: {done} of {expected} tables finished"
    out["all_meet_goal"] = done == expected and all(r["meets_goal"] for r in out["tables"].values())
    rusage = (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    out["peak_rss_mb"] = max(resource.getrusage(r).ru_maxrss for r in rusage) / 1024
    out["tables"] = dict(sorted(out["tables"].items()))
    path.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", action="append", type=parse_table, default=[])
    parser.add_argument("--tables", type=Path, help="YAML list of tables")
    parser.add_argument("--out", type=Path, default=RESULTS / "real_data.json")
    parser.add_argument("--folds", type=int, default=FOLDS, help="outer CV folds (reduced run)")
    parser.add_argument("--rows", type=int, help="stratified subsample per table (reduced run)")
    parser.add_argument("--jobs", type=int, default=1, help="tables measured in parallel")
    args = parser.parse_args(argv)
    if args.folds < 2 or args.jobs < 1 or (args.rows is not None and args.rows < 50):
        print("error: --folds >= 2, --jobs >= 1 and --rows >= 50 are needed", file=sys.stderr)
        return 2
    try:
        tables = [*args.table, *(read_tables(args.tables) if args.tables else [])] or PUBLIC
    except (TrainingError, OSError, yaml.YAMLError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    config = TrainConfig(registry=RegistryConfig(enabled=False), show_progress=False)
    out: dict[str, Any] = {
        "method": (
            f"{args.folds}-fold stratified CV AUC, same folds for all three (seed {config.seed}); "
            f"plain LightGBM {PLAIN_LGBM}; ours = train_table with family "
            f"{config.family.choice!r}, rule {config.family.rule!r} "
            f"(x{config.family.se_multiplier} SE, reference {config.family.reference!r}), "
            "re-run per fold (nested family choice)"
            + (f"; REDUCED RUN: {args.rows} rows per table" if args.rows else "")
        ),
        "tables": {},
    }
    scratch = Path(tempfile.mkdtemp(prefix="riskgrade-real-"))  # bundles are not kept
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with ProcessPoolExecutor(max_workers=min(args.jobs, len(tables))) as pool:
            running = {
                pool.submit(run_table, table, config, scratch, args.folds, args.rows): table
                for table in tables
            }
            for future in as_completed(running):
                table = running[future]
                try:
                    row = future.result()
                except (TrainingError, OSError) as error:
                    print(f"error: {table.file}: {error}", file=sys.stderr)
                    return 2
                out["tables"][table.label] = row
                print(table.label, json.dumps(row["cv_auc"]), row["family"], file=sys.stderr)
                _write(args.out, out, len(tables))  # a partial file survives an interruption
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
