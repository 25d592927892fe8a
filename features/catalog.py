"""The concrete feature spec and the entry points that compute every feature.

One set of polars definitions (``features.groups``) serves every path; each group is a filter,
a per-row ``select``, an aggregation per ``customer_id`` and a finishing ``select``, and its
expressions are built once per (as_of, config) and cached:

* batch, ``compute_features_pl`` on a portfolio: each group's lazy plan aggregates with
  ``group_by("customer_id")``, the plans are left-joined onto the customer base and finished in
  one ``select``, one query on the streaming engine.
* chunked batch, ``compute_features_chunked``: the same, per range of customer ids read from
  Parquet, so peak memory is bounded by the chunk, not the portfolio (1M customers: ~2.6 GB).
* online, one customer (``compute_feature_row``; ``compute_features_pl`` on one customer):
  the same expressions aggregate over the whole frame (``by=()``), eagerly, with no join; on
  a few thousand rows polars' per-call overhead is the cost, so this takes ~2.5 ms.

Batch and online agree bit for bit (tested). Categorical features are integer codes (index in
``FeatureDef.categories``, NaN when unknown), so the frame is float64 apart from ``customer_id``
and ``as_of``.

On Spark: nothing in the definitions is polars-specific but the syntax. Every group uses only
column arithmetic, ``when/then``, date parts, count/sum/min/max, first-after-sort and a
per-customer mean, grouped by ``customer_id`` (plus month, counterparty or facility), so each
group's plan maps one to one onto Spark SQL or the DataFrame API (or runs through narwhals,
which has a PySpark backend): ``months_back`` is integer arithmetic on year, month and day,
window bounds are the constants of ``window_start``, money sums are integer fen (``bigint``;
sums of squares ``decimal(38,0)``), so results do not depend on Spark's row order. Spark
partitions by ``customer_id`` itself (no chunking), and the batch/online parity test at 1e-9
is the acceptance test of the port.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import polars as pl

from features.groups import credit, financial, profile, transactions
from features.groups.common import (
    BY_CUSTOMER,
    ENGINE,
    FRAME_TABLES,
    FeatureConfig,
    FeatureFrames,
    FeatureInputError,
    as_date,
    customer_base,
    customer_base_plan,
    customer_chunks,
    read_customer_ids,
    read_frames,
    to_frames,
)
from features.io import RawTables
from features.spec import FeatureDef, FeatureGroup, FeatureKind, FeatureSpec, RiskDirection

__all__ = [
    "FEATURE_SPEC",
    "GROUPS",
    "FeatureConfig",
    "compute_feature_row",
    "compute_features",
    "compute_features_chunked",
    "compute_features_pl",
]

UP, DOWN, NONE = RiskDirection.UP, RiskDirection.DOWN, RiskDirection.NONE
P, F, C, T = (
    FeatureGroup.PROFILE,
    FeatureGroup.FINANCIAL,
    FeatureGroup.CREDIT,
    FeatureGroup.TRANSACTION,
)


def _f(
    name: str,
    group: FeatureGroup,
    direction: RiskDirection,
    unit: str,
    description: str,
    description_zh: str,
    kind: FeatureKind = FeatureKind.NUMERIC,
    categories: tuple[str, ...] = (),
) -> FeatureDef:
    return FeatureDef(
        name=name,
        group=group,
        risk_direction=direction,
        unit=unit,
        description=description,
        description_zh=description_zh,
        kind=kind,
        categories=categories,
    )


_CAT, _FLAG = FeatureKind.CATEGORICAL, FeatureKind.FLAG
_FLOW_ZH = {"inflow": "流入", "outflow": "流出", "netflow": "净流入"}
_FLOW_EN = {"inflow": "Inflow", "outflow": "Outflow", "netflow": "Net flow (inflow - outflow)"}
_WIN_ZH = {"1m": "近1个月", "3m": "近3个月", "12m": "近12个月"}
_WIN_EN = {"1m": "last month", "3m": "last 3 months", "12m": "last 12 months"}

FEATURE_SPEC = FeatureSpec(
    version="1.0.0",
    features=(
        # profile
        _f(
            "industry",
            P,
            NONE,
            "code",
            "Industry",
            "所属行业",
            _CAT,
            profile.CATEGORIES["industry"],
        ),
        _f("region", P, NONE, "code", "Region", "所属地区", _CAT, profile.CATEGORIES["region"]),
        _f(
            "size_class",
            P,
            NONE,
            "code",
            "Firm size class",
            "企业规模",
            _CAT,
            profile.CATEGORIES["size_class"],
        ),
        _f("company_age_years", P, DOWN, "years", "Years since incorporation", "成立年限"),
        _f("months_as_customer", P, DOWN, "months", "Months since onboarding", "客户关系月数"),
        _f("flag_sanctions_hit", P, UP, "0/1", "Listed on a sanctions list", "命中制裁名单", _FLAG),
        _f(
            "flag_legal_enforcement",
            P,
            UP,
            "0/1",
            "Subject to court enforcement",
            "被法院强制执行",
            _FLAG,
        ),
        _f("flag_fraud", P, UP, "0/1", "Confirmed fraud case on file", "存在欺诈记录", _FLAG),
        # financial
        _f("debt_ratio", F, UP, "ratio", "Total liabilities / total assets", "资产负债率"),
        _f("current_ratio", F, DOWN, "ratio", "Current assets / current liabilities", "流动比率"),
        _f("cash_ratio", F, DOWN, "ratio", "Cash / current liabilities", "现金比率"),
        _f("net_margin", F, DOWN, "ratio", "Net income / revenue", "净利润率"),
        _f(
            "return_on_assets",
            F,
            DOWN,
            "ratio/yr",
            "Annualised net income / total assets",
            "总资产收益率（年化）",
        ),
        _f(
            "ocf_to_liabilities",
            F,
            DOWN,
            "ratio/yr",
            "Annualised operating cash flow / total liabilities",
            "经营现金流负债比（年化）",
        ),
        _f(
            "interest_coverage",
            F,
            DOWN,
            "times",
            "Interest coverage: operating profit (revenue - operating costs) over interest "
            "expense, capped",
            "利息保障倍数",
        ),
        _f(
            "revenue_growth_yoy",
            F,
            DOWN,
            "ratio",
            "Annualised revenue growth against the statement a year earlier",
            "营业收入同比增长率",
        ),
        _f(
            "months_since_period_end",
            F,
            UP,
            "months",
            "Age of the latest known statement",
            "最新财报距今月数",
        ),
        _f("no_statement", F, UP, "0/1", "No financial statement known", "无可用财务报表", _FLAG),
        _f(
            "debt_ratio_change_1y",
            F,
            UP,
            "ratio",
            "Change of debt ratio over a year",
            "资产负债率同比变化",
        ),
        _f(
            "current_ratio_change_1y",
            F,
            DOWN,
            "ratio",
            "Change of current ratio over a year",
            "流动比率同比变化",
        ),
        _f(
            "net_margin_change_1y",
            F,
            DOWN,
            "ratio",
            "Change of net margin over a year",
            "净利润率同比变化",
        ),
        # credit
        _f("active_facilities", C, NONE, "count", "Active credit facilities", "有效授信笔数"),
        _f(
            "utilisation",
            C,
            UP,
            "ratio",
            "Scheduled exposure / limit of active facilities",
            "授信使用率",
        ),
        _f(
            "overdue_rate_12m",
            C,
            UP,
            "ratio",
            "Share of instalments due in 12 months paid late or unpaid",
            "近12个月逾期率",
        ),
        _f(
            "max_dpd_3m",
            C,
            UP,
            "days",
            "Maximum days past due, instalments due in 3 months",
            "近3个月最大逾期天数",
        ),
        _f(
            "max_dpd_12m",
            C,
            UP,
            "days",
            "Maximum days past due, instalments due in 12 months",
            "近12个月最大逾期天数",
        ),
        _f(
            "dpd30_count_12m",
            C,
            UP,
            "count",
            "Instalments 30+ days past due in 12 months",
            "近12个月逾期30天以上次数",
        ),
        _f(
            "dpd60_count_12m",
            C,
            UP,
            "count",
            "Instalments 60+ days past due in 12 months",
            "近12个月逾期60天以上次数",
        ),
        _f(
            "dpd90_count_12m",
            C,
            UP,
            "count",
            "Instalments 90+ days past due in 12 months",
            "近12个月逾期90天以上次数",
        ),
        _f(
            "days_since_last_delinquency",
            C,
            DOWN,
            "days",
            "Days since the last delinquency (3650 if never)",
            "距最近一次逾期天数",
        ),
        _f(
            "overdue_amount_to_limit",
            C,
            UP,
            "ratio",
            "Past-due unpaid amount / limit of active facilities",
            "逾期金额占授信额度比",
        ),
        _f(
            "facilities_opened_6m",
            C,
            UP,
            "count",
            "Facilities opened in 6 months",
            "近6个月新增授信笔数",
        ),
        # transaction
        *(
            _f(
                f"{d}_{w}",
                T,
                NONE,
                "CNY",
                f"{_FLOW_EN[d]}, {_WIN_EN[w]}",
                f"{_WIN_ZH[w]}{_FLOW_ZH[d]}金额",
            )
            for d in ("inflow", "outflow", "netflow")
            for w in ("1m", "3m", "12m")
        ),
        _f(
            "netflow_to_inflow_3m",
            T,
            DOWN,
            "ratio",
            "Net flow / inflow, last 3 months",
            "近3个月净流入占流入比",
        ),
        _f(
            "netflow_to_inflow_12m",
            T,
            DOWN,
            "ratio",
            "Net flow / inflow, last 12 months",
            "近12个月净流入占流入比",
        ),
        _f(
            "inflow_cv_12m",
            T,
            UP,
            "ratio",
            "Coefficient of variation of monthly inflows",
            "近12个月月度流入变异系数",
        ),
        _f(
            "inflow_trend",
            T,
            DOWN,
            "ratio",
            "Mean monthly inflow, last 3 months / the 9 before",
            "流入趋势（近3月/前9月）",
        ),
        _f(
            "active_months_12m",
            T,
            DOWN,
            "months",
            "Months with inflows in 12 months",
            "近12个月有流入月数",
        ),
        _f(
            "dormant_months_12m",
            T,
            UP,
            "months",
            "Months without any transaction in 12 months",
            "近12个月无交易月数",
        ),
        _f(
            "inflow_hhi_12m",
            T,
            UP,
            "index",
            "Herfindahl index of inflow by counterparty",
            "流入交易对手集中度（HHI）",
        ),
        _f(
            "top1_inflow_share_12m",
            T,
            UP,
            "ratio",
            "Largest counterparty's share of inflow",
            "最大交易对手流入占比",
        ),
        _f(
            "large_txn_share_12m",
            T,
            NONE,
            "ratio",
            "Share of transactions >= 5x the mean amount",
            "大额交易占比",
        ),
    ),
)

GROUPS: dict[FeatureGroup, ModuleType] = {
    FeatureGroup.PROFILE: profile,
    FeatureGroup.FINANCIAL: financial,
    FeatureGroup.CREDIT: credit,
    FeatureGroup.TRANSACTION: transactions,
}
"""Group modules; each has ``FEATURES``, ``aggregate``, ``finish`` and ``compute``."""


_DEFAULT_CONFIG = FeatureConfig()


@lru_cache(maxsize=256)
def _finishing(as_of: date, config: FeatureConfig) -> tuple[pl.Expr, ...]:
    """Every group's finishing expressions (cast to Float64), spec order, built once per key."""
    exprs = tuple(
        expr.cast(pl.Float64) for group in GROUPS.values() for expr in group.finish(as_of, config)
    )
    names = [expr.meta.output_name() for expr in exprs]
    if names != FEATURE_SPEC.names:  # pragma: no cover - guarded by the catalog tests
        raise RuntimeError("group finishing expressions are not in FEATURE_SPEC order")
    return exprs


def _one_customer(frames: FeatureFrames) -> FeatureFrames | None:
    """The frames restricted to their single customer, or None when they hold several.

    Rows of other customers (which the batch path would drop when joining onto the customer
    base) are filtered out, so the one-customer path sees exactly what the batch path sees.
    """
    if frames.customers.height != 1:
        return None
    customer_id = frames.customers.get_column("customer_id")[0]
    if customer_id is None:
        return None
    tables = {}
    for table in FRAME_TABLES[1:]:
        frame: pl.DataFrame = getattr(frames, table)
        ids = frame.get_column("customer_id")
        if ids.null_count() or not (ids == customer_id).all():
            frame = frame.filter(pl.col("customer_id") == customer_id)
        tables[table] = frame
    return FeatureFrames(customers=frames.customers, **tables)


def _compute_one(frames: FeatureFrames, as_of: date, config: FeatureConfig) -> pl.DataFrame:
    """All features of one customer: each group's one-row aggregate, eagerly, side by side.

    No join and no query planning: on a few thousand rows, polars' per-call overhead is the
    cost, so the same expressions run as a handful of eager calls.
    """
    customer = frames.customers.select("customer_id")
    onboarded = frames.customers.get_column("onboarding_date")[0]
    if onboarded is None or onboarded > as_of:
        return customer.clear().select("customer_id", *_finishing_empty())
    parts = [
        customer,
        *(group.aggregate(frames, as_of, config, by=()) for group in GROUPS.values()),
    ]
    return pl.concat(parts, how="horizontal").select("customer_id", *_finishing(as_of, config))


@lru_cache(maxsize=1)
def _finishing_empty() -> tuple[pl.Expr, ...]:
    return tuple(pl.lit(None, dtype=pl.Float64).alias(name) for name in FEATURE_SPEC.names)


def compute_features_pl(
    raw: RawTables | FeatureFrames, as_of: date, config: FeatureConfig | None = None
) -> pl.DataFrame:
    """All features at ``as_of`` as a polars frame (``customer_id`` then spec order, Float64).

    Equivalent to joining every group's ``compute`` on ``customer_id``, but the customer base
    is joined once and all finishing expressions run in one ``select`` of one lazy query.
    Frames holding a single customer (the online path) take a join-free route: each group
    aggregates over the whole frame with the same expressions (``by=()``). Pass
    :class:`FeatureFrames` (from :func:`features.groups.common.to_frames` or
    :func:`features.groups.common.read_frames`) to skip the pandas conversion.
    """
    config = config or _DEFAULT_CONFIG
    as_of = as_date(as_of)
    frames = to_frames(raw)
    one = _one_customer(frames)
    if one is not None:
        return _compute_one(one, as_of, config)
    # The customer base eagerly first: a lazy base made the streaming query ~2x slower.
    base = customer_base(frames, as_of).lazy()
    return feature_plan(frames, as_of, config, base).collect(engine=ENGINE)


def feature_plan(
    frames: FeatureFrames, as_of: date, config: FeatureConfig, base: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """The batch query of all features at ``as_of``: each group's plan joined on the base.

    The one query every batch engine runs: polars collects it; the Spark engine
    (:mod:`features.spark`) translates the same plan, built over empty frames, to Spark.

    Args:
        frames: The feature frames.
        as_of: The point in time.
        config: Feature constants.
        base: The customer ids to rate, already computed (by default the lazy
            ``customer_base_plan`` over ``frames.customers``, part of the query).
    """
    joined = customer_base_plan(frames.customers.lazy(), as_of) if base is None else base
    for group in GROUPS.values():
        joined = joined.join(
            group.plan(frames, as_of, config, BY_CUSTOMER),
            on="customer_id",
            how="left",
            maintain_order="left",
        )
    return joined.select("customer_id", *_finishing(as_of, config))


def compute_features_chunked(
    raw_dir: Path | str,
    as_of: date,
    *,
    chunk_customers: int = 100_000,
    config: FeatureConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pl.DataFrame:
    """All features at ``as_of`` of a raw folder, computed customer range by customer range.

    Every feature is a function of one customer's rows, so the portfolio splits into
    contiguous ranges of customer ids; each range is read (Parquet scan filtered on the id
    range) and computed alone, which bounds peak memory by ``chunk_customers`` instead of the
    portfolio size. The result equals ``compute_features_pl(read_frames(raw_dir), as_of)``.

    Args:
        raw_dir: A validated raw folder (Parquet written in customer order reads fastest).
        as_of: The point in time.
        chunk_customers: Customers per range (onboarded by ``as_of``).
        config: Feature constants; defaults when omitted.
        progress: Called with (ranges done, ranges total) after each range.

    Returns:
        ``customer_id`` then ``FEATURE_SPEC.names`` (Float64), sorted by ``customer_id``.

    Raises:
        ValueError: if ``chunk_customers`` is not positive.
        RawDataError: if a table is missing or unreadable.
    """
    as_of = as_date(as_of)
    chunks = customer_chunks(read_customer_ids(raw_dir, as_of), chunk_customers)
    parts = []
    for done, customers in enumerate(chunks, start=1):
        frames = read_frames(raw_dir, as_of, customers=customers)
        parts.append(compute_features_pl(frames, as_of, config))
        del frames
        if progress is not None:
            progress(done, len(chunks))
    if not parts:
        return compute_features_pl(read_frames(raw_dir, as_of, customers=("", "")), as_of, config)
    return pl.concat(parts, how="vertical")


def compute_feature_row(
    raw: RawTables | FeatureFrames, as_of: date, config: FeatureConfig | None = None
) -> np.ndarray | None:
    """The features of the one customer in ``raw`` as a float64 vector (the online path).

    Args:
        raw: One customer's records (a scoring request's frames).
        as_of: The point in time.
        config: Feature constants; defaults when omitted.

    Returns:
        ``FEATURE_SPEC.names`` values in order (NaN when undefined), or None when the customer
        was not onboarded by ``as_of``.

    Raises:
        FeatureInputError: if ``raw`` does not hold exactly one customer.
    """
    frames = to_frames(raw)
    if frames.customers.height != 1:
        raise FeatureInputError(
            f"compute_feature_row needs exactly one customer, got {frames.customers.height}"
        )
    frame = compute_features_pl(frames, as_of, config)
    if frame.height == 0:
        return None
    # None -> NaN in the float conversion; ~10x cheaper than DataFrame.to_numpy on one row.
    return np.array(frame.row(0)[1:], dtype=np.float64)


def compute_features(
    raw: RawTables | FeatureFrames, as_of: date, config: FeatureConfig | None = None
) -> pd.DataFrame:
    """All features of every customer onboarded by ``as_of``, from records known at ``as_of``.

    Args:
        raw: The raw tables (a portfolio, or one customer's rows for online scoring).
        as_of: The point in time; nothing dated later is seen.
        config: Feature constants; defaults when omitted.

    Returns:
        Columns ``customer_id``, ``as_of`` (datetime64), then ``FEATURE_SPEC.names`` as float64
        (NaN when undefined), one row per customer sorted by ``customer_id``.
    """
    as_of = as_date(as_of)
    frame = compute_features_pl(raw, as_of, config)
    names = FEATURE_SPEC.names
    if frame.height == 1:
        values = np.array([frame.row(0)[1:]], dtype=np.float64)
    else:
        # Via numpy: nulls become NaN.
        values = frame.select(names).to_numpy().astype("float64", copy=False)
    out = pd.DataFrame(values, columns=names)
    out.insert(0, "customer_id", pd.array(frame["customer_id"].to_list(), dtype="str"))
    out.insert(1, "as_of", pd.Series(pd.Timestamp(as_of), index=out.index, dtype="datetime64[ns]"))
    return out


BATCH_FEATURES_FROM = 4
"""Customers sharing an ``as_of`` from which one batch query beats one eager pass each."""


def combined_frames(parts: Sequence[FeatureFrames]) -> FeatureFrames:
    """Several one-customer frames as one portfolio, the ``k``-th customer renamed ``"k"``.

    Ids inside a part are only unique within it (two scoring requests may both hold facility
    ``F1``), and feature queries join on them; so the k-th part's customer id becomes
    ``str(k)`` and its facility ids are prefixed with ``"k/"``.
    """
    tables: dict[str, list[pl.DataFrame]] = {name: [] for name in FRAME_TABLES}
    for k, frames in enumerate(parts):
        key = pl.lit(str(k), dtype=pl.String())
        for name in FRAME_TABLES:
            frame: pl.DataFrame = getattr(frames, name)
            renamed = [key.alias("customer_id")]
            if "facility_id" in frame.columns:
                renamed.append(pl.concat_str(key, pl.lit("/"), "facility_id").alias("facility_id"))
            tables[name].append(frame.with_columns(renamed))
    return FeatureFrames(**{name: pl.concat(frames) for name, frames in tables.items()})


def compute_feature_rows(
    parts: Sequence[FeatureFrames], as_of: date, config: FeatureConfig | None = None
) -> list[np.ndarray | None]:
    """The feature vectors of several customers' frames at one ``as_of`` (the online path).

    Below `BATCH_FEATURES_FROM` customers each takes `compute_feature_row`; from it they share
    one batch query over `combined_frames`. Both paths give the same values bit for bit.

    Returns:
        Per part, as `compute_feature_row`: the values in ``FEATURE_SPEC.names`` order, or None
        when the customer was not onboarded by ``as_of``.
    """
    if len(parts) < BATCH_FEATURES_FROM:
        return [compute_feature_row(frames, as_of, config) for frames in parts]
    table = compute_features_pl(combined_frames(parts), as_of, config)
    rows: list[np.ndarray | None] = [None] * len(parts)
    keys = table.get_column("customer_id").to_list()
    matrix = table.drop("customer_id").to_numpy().astype(np.float64, copy=False)
    for key, values in zip(keys, matrix, strict=True):
        rows[int(key)] = values
    return rows
