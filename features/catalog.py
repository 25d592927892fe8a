"""The concrete feature spec and the one entry point that computes every feature.

``compute_features`` serves batch (a whole portfolio) and online (the rows of one scoring
request) with the same polars definitions in ``features.groups``; the parity of the two paths
is a test. Categorical features are integer codes (index in ``FeatureDef.categories``, NaN when
unknown), so the frame is float64 apart from ``customer_id`` and ``as_of``.
"""

from __future__ import annotations

from datetime import date
from types import ModuleType

import pandas as pd
import polars as pl

from features.groups import credit, financial, profile, transactions
from features.groups.common import FeatureConfig, FeatureFrames, as_date, customer_base, to_frames
from features.io import RawTables
from features.spec import FeatureDef, FeatureGroup, FeatureKind, FeatureSpec, RiskDirection

__all__ = ["FEATURE_SPEC", "GROUPS", "FeatureConfig", "compute_features", "compute_features_pl"]

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
            "(Revenue - operating costs) / interest expense, capped",
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


def compute_features_pl(
    raw: RawTables | FeatureFrames, as_of: date, config: FeatureConfig | None = None
) -> pl.DataFrame:
    """All features at ``as_of`` as a polars frame (``customer_id`` then spec order, Float64).

    Equivalent to joining every group's ``compute`` on ``customer_id``, but the customer base
    is joined once and all finishing expressions run in one ``select``. Pass
    :class:`FeatureFrames` (from :func:`features.groups.common.to_frames`) to skip the pandas
    conversion when computing several snapshots of the same data.
    """
    config = config or FeatureConfig()
    as_of = as_date(as_of)
    frames = to_frames(raw)
    joined = customer_base(frames, as_of)
    finishing: list[pl.Expr] = []
    for group in GROUPS.values():
        joined = joined.join(
            group.aggregate(frames, as_of, config),
            on="customer_id",
            how="left",
            maintain_order="left",
        )
        finishing.extend(group.finish(as_of, config))
    out = joined.select("customer_id", *(expr.cast(pl.Float64) for expr in finishing))
    return out.select("customer_id", *FEATURE_SPEC.names)


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
    # Via numpy: nulls become NaN, and it is ~10x cheaper than to_pandas on one-row frames.
    values = frame.select(names).to_numpy().astype("float64", copy=False)
    out = pd.DataFrame(values, columns=names)
    out.insert(0, "customer_id", pd.array(frame["customer_id"].to_list(), dtype="str"))
    out.insert(1, "as_of", pd.Series(pd.Timestamp(as_of), index=out.index, dtype="datetime64[ns]"))
    return out
