"""Sample portfolio generator: a synthetic bank extract in the raw-data contract.

Every customer carries a latent monthly financial *health* (higher is healthier):
an AR(1) process around a customer mean set by industry, region and size, plus an
industry-weighted macro cycle and an optional shock. The true 12-month PD is a
logistic function of health; monthly default hazards follow from it and decide the
default month. Every observable record is a noisy view of the same health:
statement ratios, payment delays, transaction flows, reporting lags and gaps. The
truth (``true_pd_12m`` and health per customer and month while alive) is written to
``_truth/true_pd.parquet`` so model quality can be compared with an oracle.

Records stop when the customer stops paying (a few months before a dpd90 default):
no statements or facilities after that, instalments unpaid, inflows collapse.

All dates are handled internally as int64 day numbers since 1970-01-01.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.special import expit

from features.io import RawTables, replace_dir
from features.judgement import JudgementTables, empty_table
from features.records import RecordTables
from features.schema import (
    CHANNELS,
    DEFAULT_TYPES,
    FACILITY_TYPES,
    INDUSTRIES,
    LEGAL_FORMS,
    RECORD_TABLES,
    REGIONS,
    SIZE_CLASSES,
    TABLES,
    arrow_schema,
)
from features.synthetic_judgement import (
    ASSESSMENTS_ARROW,
    OVERRIDES_ARROW,
    JudgementSpec,
    simulate_judgement,
)
from features.synthetic_records import (
    CONTRACT_TERMS_ARROW,
    REVIEWS_ARROW,
    RecordsSpec,
    simulate_records,
)

TRUTH_DIR: Final[str] = "_truth"
TRUE_PD_FILE: Final[str] = "true_pd.parquet"

# --- portfolio structure (aligned with INDUSTRIES, REGIONS, SIZE_CLASSES) --------------------
_INDUSTRY_SHARE = np.array([0.06, 0.20, 0.10, 0.07, 0.18, 0.09, 0.07, 0.09, 0.05, 0.09])
_INDUSTRY_HEALTH = np.array([-0.15, 0.0, -0.35, -0.40, -0.05, -0.10, -0.30, 0.15, 0.25, 0.20])
_INDUSTRY_MACRO_BETA = np.array([0.8, 1.1, 1.4, 1.5, 1.0, 1.1, 1.3, 0.7, 0.6, 0.5])
_INDUSTRY_ASSET_TURNOVER = np.array([0.8, 1.0, 0.7, 0.25, 1.8, 0.9, 0.7, 1.1, 0.4, 0.8])
_INDUSTRY_CURRENT_SHARE = np.array([0.40, 0.50, 0.65, 0.70, 0.70, 0.35, 0.30, 0.60, 0.25, 0.50])
_INDUSTRY_LEVERAGE = np.array([0.0, 0.1, 0.4, 0.7, 0.2, 0.2, 0.1, -0.3, 0.3, -0.2])
_REGION_SHARE = np.array([0.30, 0.18, 0.20, 0.14, 0.08, 0.10])
_REGION_HEALTH = np.array([0.15, 0.0, 0.10, -0.05, -0.30, -0.15])
_SIZE_SHARE = np.array([0.40, 0.35, 0.18, 0.07])
_SIZE_HEALTH = np.array([-0.30, -0.10, 0.10, 0.30])
_SIZE_REVENUE = np.array([3e6, 2.5e7, 2e8, 2e9])
"""Median annual revenue per size class, yuan."""
_SIZE_TXN_PER_MONTH = np.array([0.8, 2.0, 4.0, 10.0])
_SIZE_COUNTERPARTIES = np.array([4, 8, 15, 30])
_SIZE_FACILITIES = np.array([[1, 1], [1, 2], [2, 3], [3, 5]])
"""Concurrent facility slots per size class: [low, high] inclusive."""
_SIZE_AUDITED = np.array([0.10, 0.40, 0.85, 1.0])
_SIZE_ANNUAL_REPORTER = np.array([0.5, 0.0, 0.0, 0.0])
_LEGAL_FORM_BY_SIZE = np.array(  # columns follow LEGAL_FORMS
    [
        [0.45, 0.0, 0.20, 0.35],
        [0.75, 0.0, 0.15, 0.10],
        [0.80, 0.20, 0.0, 0.0],
        [0.45, 0.55, 0.0, 0.0],
    ]
)
_CHANNEL_BY_SIZE = np.array(  # columns follow CHANNELS
    [
        [0.15, 0.30, 0.20, 0.30, 0.05],
        [0.30, 0.35, 0.15, 0.12, 0.08],
        [0.45, 0.35, 0.08, 0.04, 0.08],
        [0.60, 0.30, 0.03, 0.01, 0.06],
    ]
)
_FACILITY_TYPE_SHARE = np.array([0.5, 0.3, 0.2])
_FACILITY_TENORS = (np.array([12, 24, 36, 48, 60]), np.array([12, 24, 36]), np.array([6, 12]))
_FACILITY_LIMIT_TO_REVENUE = np.array([0.25, 0.15, 0.10])
_DEFAULT_TYPE_SHARE = np.array([0.80, 0.08, 0.12])  # follows DEFAULT_TYPES

# --- latent process -------------------------------------------------------------------------
_MU_NOISE = 0.75
_AR_PHI = 0.93
_AR_SIGMA = 0.20
_PD_SLOPE = 1.4
_MACRO_AMPLITUDE = 0.2
_MACRO_PERIOD_MONTHS = 60
_DPD_DEFAULT_DAYS = 90
_MAX_LATE_DAYS = 85
"""Performing customers always pay within this many days, so dpd90 means default."""
_CALIBRATION_SEED = 20_240_601
_CALIBRATION_SAMPLE = 100_000
_SURVIVOR_ADJUSTMENT = 1.2
"""Scales the calibration target to offset the drift of survivors towards health."""
_NEVER = np.int64(10**7)
"""Day number used as 'never' (year 29349)."""
_SECONDS_PER_DAY = 86_400

_CUSTOMER_DIGITS_MIN = 7
_FACILITY_SEQ_DIGITS = 3
_TXN_SEQ_DIGITS = 5
_COUNTERPARTY_DIGITS = 8

SCHEMAS_ARROW: Final[dict[str, pa.Schema]] = {name: arrow_schema(name) for name in TABLES}
"""Arrow schema of every raw table as written by the generator (contract order)."""

TRUTH_SCHEMA: Final[pa.Schema] = pa.schema(
    [
        ("customer_id", pa.string()),
        ("month", pa.timestamp("ns")),
        ("true_pd_12m", pa.float64()),
        ("health", pa.float64()),
    ]
)
"""Schema of ``_truth/true_pd.parquet``: one row per customer and month while alive."""


class GeneratorConfig(BaseModel):
    """What portfolio to generate."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    customers: int = Field(default=2_000, ge=1, le=9_999_999)
    seed: int = Field(default=0, ge=0)
    start: date = date(2019, 1, 1)
    """First day of the simulated window; must be the first day of a month."""
    end: date = date(2025, 12, 31)
    """Extract date: no event after it (only contractual due dates may lie later)."""
    mess_rate: float = Field(default=0.05, ge=0.0, le=0.5)
    """Share of missing statements, late publications and dormant months."""
    chunk_customers: int = Field(default=20_000, ge=1)
    target_default_rate: float = Field(default=0.035, gt=0.0, lt=0.3)
    shock_date: date | None = None
    """From this date on, the latent health of affected customers drops by ``shock_size``."""
    shock_size: float = Field(default=0.0, ge=0.0, le=5.0)
    shock_industries: tuple[str, ...] = ()
    """Industries hit by the shock; empty means every industry."""

    @model_validator(mode="after")
    def _check_window_and_shock(self) -> GeneratorConfig:
        if self.start.day != 1:
            raise ValueError(f"start must be the first day of a month, got {self.start}")
        if (self.end.year - self.start.year) * 12 + self.end.month - self.start.month < 11:
            raise ValueError(
                f"end ({self.end}) must be at least 12 months after start ({self.start})"
            )
        unknown = sorted(set(self.shock_industries) - set(INDUSTRIES))
        if unknown:
            raise ValueError(
                f"shock_industries has unknown industries {unknown}; known: {list(INDUSTRIES)}"
            )
        if self.shock_date is not None and not self.start <= self.shock_date <= self.end:
            raise ValueError(
                f"shock_date {self.shock_date} must lie within [{self.start}, {self.end}]"
            )
        return self


class GenerationSummary(BaseModel):
    """What a generation run produced."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    customers: int
    seed: int
    start: date
    end: date
    row_counts: dict[str, int]
    """Rows per raw table."""
    truth_rows: int
    """Rows of ``_truth/true_pd.parquet``."""
    defaults: int
    yearly_default_rates: dict[int, float]
    """Calendar year -> share of customers performing on 1 January that default in the year."""
    yearly_cohort_sizes: dict[int, int]
    """Calendar year -> customers performing on 1 January (denominator of the rate)."""


# --- the simulation world (shared by all chunks) ----------------------------------------------


@dataclass(frozen=True)
class _World:
    """Time grid, macro path and PD intercept: identical for every chunk of one config."""

    month_start: np.ndarray
    """Day number of the first day of each month, length n_months + 1."""
    start_day: int
    end_day: int
    macro: np.ndarray
    intercept: float
    shock_from: int
    """First month index hit by the shock (n_months if none)."""
    shock_mask: np.ndarray
    """Per industry: hit by the shock."""
    shock_size: float
    years: tuple[int, ...]
    """Complete calendar years inside the window."""

    @property
    def n_months(self) -> int:
        return len(self.month_start) - 1


def _day(value: date) -> int:
    return int(np.datetime64(value, "D").astype(np.int64))


def _build_world(config: GeneratorConfig) -> _World:
    start_m = np.datetime64(config.start, "M")
    end_m = np.datetime64(config.end, "M")
    n_months = int((end_m - start_m).astype(np.int64)) + 1
    month_start = (
        (start_m + np.arange(n_months + 1).astype("timedelta64[M]"))
        .astype("datetime64[D]")
        .astype(np.int64)
    )
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(0,)))
    noise = np.zeros(n_months)
    shocks = rng.normal(0.0, 0.04, n_months)
    for m in range(1, n_months):
        noise[m] = 0.8 * noise[m - 1] + shocks[m]
    months = np.arange(n_months)
    macro = -_MACRO_AMPLITUDE * np.sin(2 * np.pi * months / _MACRO_PERIOD_MONTHS) + noise

    shock_from = n_months
    if config.shock_date is not None and config.shock_size > 0:
        shock_from = int((np.datetime64(config.shock_date, "M") - start_m).astype(np.int64))
    hit = set(config.shock_industries) if config.shock_industries else set(INDUSTRIES)
    shock_mask = np.array([name in hit for name in INDUSTRIES])

    years = tuple(
        year
        for year in range(config.start.year, config.end.year + 1)
        if date(year, 1, 1) >= config.start and date(year, 12, 31) <= config.end
    )
    return _World(
        month_start=month_start,
        start_day=_day(config.start),
        end_day=_day(config.end),
        macro=macro,
        intercept=_calibrate_intercept(config.target_default_rate, macro),
        shock_from=shock_from,
        shock_mask=shock_mask,
        shock_size=config.shock_size,
        years=years,
    )


def _calibrate_intercept(target: float, macro: np.ndarray) -> float:
    """PD intercept so that the mean 12-month PD over the health distribution hits ``target``.

    Uses a fixed reference sample (independent of the config seed) of the stationary
    health distribution, so the intercept only depends on the target and the macro path.
    """
    rng = np.random.default_rng(_CALIBRATION_SEED)
    n = _CALIBRATION_SAMPLE
    industry = rng.choice(len(INDUSTRIES), n, p=_INDUSTRY_SHARE)
    region = rng.choice(len(REGIONS), n, p=_REGION_SHARE)
    size = rng.choice(len(SIZE_CLASSES), n, p=_SIZE_SHARE)
    stationary_sd = _AR_SIGMA / np.sqrt(1 - _AR_PHI**2)
    health = (
        _INDUSTRY_HEALTH[industry]
        + _REGION_HEALTH[region]
        + _SIZE_HEALTH[size]
        + rng.normal(0.0, _MU_NOISE, n)
        + rng.normal(0.0, stationary_sd, n)
        + _INDUSTRY_MACRO_BETA[industry] * macro[rng.integers(0, len(macro), n)]
    )
    goal = min(target * _SURVIVOR_ADJUSTMENT, 0.5)
    low, high = -15.0, 5.0
    for _ in range(60):
        mid = (low + high) / 2
        if expit(mid - _PD_SLOPE * health).mean() < goal:
            low = mid
        else:
            high = mid
    return (low + high) / 2


# --- small vectorised helpers -----------------------------------------------------------------


def _add_months(days: np.ndarray, months: np.ndarray) -> np.ndarray:
    """Same day of month ``months`` later (day clipped to 28 so every month has it)."""
    d = days.astype("datetime64[D]")
    m = d.astype("datetime64[M]")
    day_of_month = np.minimum((d - m.astype("datetime64[D]")).astype(np.int64), 27)
    shifted = (m + months.astype("timedelta64[M]")).astype("datetime64[D]").astype(np.int64)
    return shifted + day_of_month


def _month_index(days: np.ndarray, world: _World) -> np.ndarray:
    """Index of the month containing each day (may be < 0 or >= n_months)."""
    months = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    first = world.month_start[0].astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    return months - first


def _cumcount(groups: np.ndarray) -> np.ndarray:
    """0-based position of each element within its run of equal (sorted) group values."""
    n = len(groups)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(groups[1:] != groups[:-1]) + 1]
    run_lengths = np.diff(np.r_[starts, n])
    return np.arange(n) - np.repeat(starts, run_lengths)


def _ids(prefix: str, parts: Sequence[tuple[np.ndarray, int]], n: int) -> pa.Array:
    """Fixed-width string ids ``prefix`` + zero-padded numbers, built without Python loops."""
    width = len(prefix) + sum(digits for _, digits in parts)
    buffer = np.empty((n, width), dtype=np.uint8)
    buffer[:, : len(prefix)] = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    column = len(prefix)
    for values, digits in parts:
        remaining = np.asarray(values, dtype=np.int64).copy()
        if n and (remaining.min() < 0 or remaining.max() >= 10**digits):
            raise OverflowError(f"{prefix} id part does not fit in {digits} digits")
        for position in range(digits - 1, -1, -1):
            buffer[:, column + position] = 48 + remaining % 10
            remaining //= 10
        column += digits
    offsets = (np.arange(n + 1, dtype=np.int64) * width).astype(np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(buffer.tobytes()))


def _codes(labels: Sequence[str], codes: np.ndarray) -> pa.Array:
    return pa.array(list(labels), type=pa.string()).take(pa.array(codes, type=pa.int64()))


def _timestamps(days: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(
        np.asarray(days, dtype=np.int64).astype("datetime64[D]").astype("datetime64[ns]"),
        type=pa.timestamp("ns"),
        mask=mask,
    )


def _cents(values: np.ndarray) -> np.ndarray:
    return np.round(values, 2)


def _choose(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One categorical draw per row of a (rows x categories) probability matrix."""
    cumulative = np.cumsum(probabilities, axis=1)
    cumulative[:, -1] = 1.0
    return (rng.random(len(probabilities))[:, None] > cumulative).sum(axis=1)


# --- one chunk of customers -------------------------------------------------------------------


@dataclass(frozen=True)
class _Chunk:
    tables: dict[str, pa.Table]
    truth: pa.Table
    cohort: np.ndarray
    """Customers performing on 1 January, per year of ``_World.years``."""
    cohort_defaults: np.ndarray
    """Of those, customers defaulting within the year."""
    judgement: dict[str, pa.Table]
    """Assessments and overrides (empty without a judgement spec)."""


@dataclass(frozen=True)
class _Customers:
    number: np.ndarray
    """1-based global customer number."""
    industry: np.ndarray
    region: np.ndarray
    size: np.ndarray
    onboarding: np.ndarray
    revenue: np.ndarray
    """Annual revenue level at health 0, yuan."""
    mu: np.ndarray


def _simulate_chunk(
    config: GeneratorConfig,
    world: _World,
    chunk_index: int,
    first: int,
    n: int,
    judgement: JudgementSpec | None = None,
    records: RecordsSpec | None = None,
) -> _Chunk:
    """Simulate customers ``first+1 .. first+n`` with their own RNG stream (seed, chunk index).

    The draw order is fixed (customers, health, defaults, credit, statements, transactions),
    so a shock, which only changes health values, leaves every random draw in place. Human
    judgement (when ``judgement`` is given) draws from a separate stream (seed, 2, chunk index),
    reviews and contract terms (when ``records`` is given) from another (seed, 3, chunk index).
    """
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(1, chunk_index)))
    digits = max(_CUSTOMER_DIGITS_MIN, len(str(config.customers)))
    cust = _draw_customers(rng, world, first, n)
    health = _simulate_health(rng, world, cust)
    pd12 = expit(world.intercept - _PD_SLOPE * health)
    alive_from = np.searchsorted(world.month_start[:-1], cust.onboarding, side="left")
    event_day, stop_day, default_type = _draw_defaults(rng, world, cust, pd12, alive_from)

    facilities, repayments, default_day, default_type = _credit(
        rng, world, cust, health, stop_day, event_day, default_type, digits
    )
    customer_ids = _ids("C", [(cust.number, digits)], n)
    recorded = default_day <= world.end_day
    tables = {
        "customers": _customers_table(rng, cust, customer_ids),
        "financial_statements": _statements(rng, config, world, cust, health, stop_day, digits),
        "credit_facilities": facilities,
        "repayments": repayments,
        "transactions": _transactions(
            rng, config, world, cust, health, stop_day, default_day, digits
        ),
        "defaults": pa.table(
            [
                customer_ids.filter(pa.array(recorded)),
                _timestamps(default_day[recorded]),
                _codes(DEFAULT_TYPES, default_type[recorded]),
            ],
            schema=SCHEMAS_ARROW["defaults"],
        ),
    }
    truth = _truth(world, cust, health, pd12, alive_from, default_day, customer_ids)

    jan1 = np.array([_day(date(year, 1, 1)) for year in world.years], dtype=np.int64)
    in_cohort = (cust.onboarding[:, None] < jan1) & (default_day[:, None] >= jan1)
    defaulted = in_cohort & (
        default_day[:, None]
        < np.array([_day(date(year + 1, 1, 1)) for year in world.years], dtype=np.int64)
    )
    extra = {}
    if judgement is not None:
        extra = simulate_judgement(
            np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(2, chunk_index))),
            judgement,
            numbers=cust.number,
            customer_ids=customer_ids.to_numpy(zero_copy_only=False).astype(object),
            industry=cust.industry,
            onboarding=cust.onboarding,
            health=health,
            quality=cust.mu,
            pd12=pd12,
            month_start=world.month_start,
            end_day=world.end_day,
            default_day=default_day,
            industries=INDUSTRIES,
        )
    if records is not None:
        extra |= simulate_records(
            np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(3, chunk_index))),
            records,
            customer_ids=customer_ids.to_numpy(zero_copy_only=False).astype(object),
            onboarding=cust.onboarding,
            pd12=pd12,
            month_start=world.month_start,
            end_day=world.end_day,
            default_day=default_day,
            statement_months=_statement_months(tables["financial_statements"], customer_ids),
        )
    return _Chunk(tables, truth, in_cohort.sum(axis=0), defaulted.sum(axis=0), extra)


def _statement_months(statements: pa.Table, customer_ids: pa.Array) -> np.ndarray:
    """Per customer, the longest period its statements cover (12 without any statement)."""
    frame = statements.select(["customer_id", "period_months"]).to_pandas()
    longest = frame.groupby("customer_id")["period_months"].max()
    ids = customer_ids.to_numpy(zero_copy_only=False)
    return longest.reindex(ids).fillna(12).to_numpy(dtype=np.int64)


def _draw_customers(rng: np.random.Generator, world: _World, first: int, n: int) -> _Customers:
    industry = rng.choice(len(INDUSTRIES), n, p=_INDUSTRY_SHARE)
    region = rng.choice(len(REGIONS), n, p=_REGION_SHARE)
    size = rng.choice(len(SIZE_CLASSES), n, p=_SIZE_SHARE)
    before_start = rng.random(n) < 0.4
    window = world.end_day - 90 - world.start_day
    onboarding = np.where(
        before_start,
        world.start_day - 1 - rng.integers(0, 8 * 365, n),
        world.start_day + rng.integers(0, max(window, 1), n),
    )
    mu = (
        _INDUSTRY_HEALTH[industry]
        + _REGION_HEALTH[region]
        + _SIZE_HEALTH[size]
        + rng.normal(0.0, _MU_NOISE, n)
    )
    revenue = _SIZE_REVENUE[size] * np.exp(rng.normal(0.0, 0.5, n))
    return _Customers(
        number=np.arange(first + 1, first + n + 1, dtype=np.int64),
        industry=industry,
        region=region,
        size=size,
        onboarding=onboarding.astype(np.int64),
        revenue=revenue,
        mu=mu,
    )


def _simulate_health(rng: np.random.Generator, world: _World, cust: _Customers) -> np.ndarray:
    n, n_months = len(cust.mu), world.n_months
    innovations = rng.normal(0.0, _AR_SIGMA, (n, n_months))
    innovations[:, 0] = rng.normal(0.0, _AR_SIGMA / np.sqrt(1 - _AR_PHI**2), n)
    for m in range(1, n_months):
        innovations[:, m] += _AR_PHI * innovations[:, m - 1]
    health = innovations
    health += cust.mu[:, None]
    health += _INDUSTRY_MACRO_BETA[cust.industry][:, None] * world.macro[None, :]
    if world.shock_from < n_months:
        hit = world.shock_mask[cust.industry]
        health[hit, world.shock_from :] -= world.shock_size
    return health


def _draw_defaults(
    rng: np.random.Generator,
    world: _World,
    cust: _Customers,
    pd12: np.ndarray,
    alive_from: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw the credit event: (event day, day payments stop, default type code)."""
    n, n_months = pd12.shape
    hazard = 1.0 - (1.0 - pd12) ** (1.0 / 12.0)
    eligible = np.arange(n_months)[None, :] >= alive_from[:, None]
    event = (rng.random((n, n_months)) < hazard) & eligible
    has_event = event.any(axis=1)
    month = event.argmax(axis=1)
    month_length = world.month_start[month + 1] - world.month_start[month]
    event_day = world.month_start[month] + (rng.random(n) * month_length).astype(np.int64)
    event_day = np.where(has_event, np.minimum(event_day, world.end_day), _NEVER)
    default_type = np.asarray(rng.choice(len(DEFAULT_TYPES), n, p=_DEFAULT_TYPE_SHARE))
    lead = np.where(default_type == 0, _DPD_DEFAULT_DAYS, rng.integers(0, 61, n))
    stop_day = np.where(has_event, np.maximum(event_day - lead, cust.onboarding + 1), _NEVER)
    return event_day, stop_day, default_type


def _customers_table(rng: np.random.Generator, cust: _Customers, ids: pa.Array) -> pa.Table:
    n = len(cust.mu)
    legal_form = _choose(rng, _LEGAL_FORM_BY_SIZE[cust.size])
    age_years = 0.5 + rng.exponential(np.array([5.0, 8.0, 12.0, 18.0])[cust.size])
    founded = cust.onboarding - np.minimum(age_years * 365.25, 70 * 365).astype(np.int64)
    weakness = -(cust.mu - cust.mu.mean())
    flags = [
        rng.random(n) < expit(-4.4 + 0.2 * weakness),  # sanctions: mostly unrelated to health
        rng.random(n) < expit(-4.5 + 0.8 * weakness),  # legal enforcement follows distress
        rng.random(n) < expit(-4.6 + 0.4 * weakness),
    ]
    return pa.table(
        [
            ids,
            _codes(INDUSTRIES, cust.industry),
            _codes(REGIONS, cust.region),
            _codes(SIZE_CLASSES, cust.size),
            _codes(LEGAL_FORMS, legal_form),
            _timestamps(founded),
            _timestamps(cust.onboarding),
            *[pa.array(flag) for flag in flags],
        ],
        schema=SCHEMAS_ARROW["customers"],
    )


def _credit(
    rng: np.random.Generator,
    world: _World,
    cust: _Customers,
    health: np.ndarray,
    stop_day: np.ndarray,
    event_day: np.ndarray,
    default_type: np.ndarray,
    digits: int,
) -> tuple[pa.Table, pa.Table, np.ndarray, np.ndarray]:
    """Facilities (renewed in slots) and their instalments; also fixes the default date.

    Returns:
        (facilities, repayments, default day per customer (``_NEVER`` if none), default type).
    """
    n, n_months = health.shape
    low, high = _SIZE_FACILITIES[cust.size].T
    slot_customer = np.repeat(np.arange(n), low + rng.integers(0, high - low + 1))
    n_slots = len(slot_customer)
    first_slot = _cumcount(slot_customer) == 0
    horizon = np.minimum(stop_day, world.end_day)[slot_customer]
    earliest = np.maximum(cust.onboarding, world.start_day - 730)[slot_customer]
    opens = earliest + np.where(
        first_slot, rng.integers(0, 30, n_slots), rng.integers(0, 540, n_slots)
    )

    empty = np.zeros(0, dtype=np.int64)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = [(empty,) * 4]
    live = np.flatnonzero(opens < horizon)
    opens = opens[live]
    while live.size:
        kinds = rng.choice(len(FACILITY_TYPES), live.size, p=_FACILITY_TYPE_SHARE)
        tenors = np.empty(live.size, dtype=np.int64)
        for kind, options in enumerate(_FACILITY_TENORS):
            chosen = kinds == kind
            tenors[chosen] = rng.choice(options, int(chosen.sum()))
        parts.append((slot_customer[live], opens, kinds, tenors))
        # A maturing facility is usually renewed after a short gap while the customer performs.
        next_open = _add_months(opens, tenors) + rng.integers(0, 46, live.size)
        renewed = (rng.random(live.size) < 0.9) & (next_open < horizon[live])
        live, opens = live[renewed], next_open[renewed]

    f_customer, f_open, f_kind, f_tenor = (
        np.concatenate(column) for column in zip(*parts, strict=True)
    )
    order = np.lexsort((f_open, f_customer))
    f_customer, f_open, f_kind, f_tenor = (
        f_customer[order],
        f_open[order],
        f_kind[order],
        f_tenor[order],
    )
    n_fac = len(f_customer)
    f_seq = _cumcount(f_customer) + 1
    f_maturity = _add_months(f_open, f_tenor)
    h_open = health[f_customer, np.clip(_month_index(f_open, world), 0, n_months - 1)]
    limit = np.maximum(
        np.round(
            cust.revenue[f_customer]
            * _FACILITY_LIMIT_TO_REVENUE[f_kind]
            * np.exp(0.2 * h_open + rng.normal(0.0, 0.4, n_fac)),
            -3,
        ),
        1000.0,
    )
    drawn = np.select(
        [f_kind == 0, f_kind == 1],
        [np.ones(n_fac), rng.uniform(0.4, 1.0, n_fac)],
        rng.uniform(0.6, 1.0, n_fac),
    )
    principal = limit * drawn
    rate = 0.04 + 0.03 * expit(-h_open)  # riskier customers are priced higher

    # Instalments: equal principal parts plus interest on the remaining balance.
    r_fac = np.repeat(np.arange(n_fac), f_tenor)
    r_no = _cumcount(r_fac) + 1
    r_customer = f_customer[r_fac]
    tenor = f_tenor[r_fac]
    due = _add_months(f_open[r_fac], r_no)
    principal_part = principal[r_fac] / tenor
    remaining = principal[r_fac] * (1.0 - (r_no - 1) / tenor)
    amount_due = np.maximum(_cents(principal_part + remaining * rate[r_fac] / 12.0), 0.01)

    n_rep = len(r_fac)
    h_due = health[r_customer, np.clip(_month_index(due, world), 0, n_months - 1)]
    late = rng.random(n_rep) < expit(-2.2 - 1.3 * h_due)
    # The tail of days late fattens as health falls; performing customers stay below dpd90.
    days_late = np.minimum(np.ceil(rng.exponential(6.0 * np.exp(-0.6 * h_due))), _MAX_LATE_DAYS)
    offset = np.where(late, days_late.astype(np.int64), -rng.integers(0, 6, n_rep))
    paid_day = due + offset
    partial = rng.random(n_rep) < expit(-4.0 - 1.2 * h_due)
    paid_amount = np.where(
        partial, np.maximum(_cents(amount_due * rng.uniform(0.3, 0.9, n_rep)), 0.01), amount_due
    )
    customer_stop = stop_day[r_customer]
    stopped = (due >= customer_stop) | (paid_day >= customer_stop)
    unpaid = stopped | (paid_day > world.end_day) | (due > world.end_day)

    # dpd90: 90 days after the first instalment left unpaid by the stop.
    first_unpaid = np.full(n, _NEVER)
    np.minimum.at(first_unpaid, r_customer[stopped], due[stopped])
    has_event = event_day < _NEVER
    dpd = has_event & (default_type == 0)
    dpd_ok = dpd & (first_unpaid <= stop_day + 62)
    default_type = np.where(dpd & ~dpd_ok, DEFAULT_TYPES.index("insolvency"), default_type)
    default_day = np.where(dpd_ok, first_unpaid + _DPD_DEFAULT_DAYS, event_day)

    repaid_share = np.where(unpaid, 0.0, paid_amount / amount_due)
    outstanding = principal - np.bincount(
        r_fac, weights=np.minimum(repaid_share, 1.0) * principal_part, minlength=n_fac
    )

    customer_numbers = cust.number
    facility_ids = _ids(
        "F", [(customer_numbers[f_customer], digits), (f_seq, _FACILITY_SEQ_DIGITS)], n_fac
    )
    facility_customer_ids = _ids("C", [(customer_numbers[f_customer], digits)], n_fac)
    facilities = pa.table(
        [
            facility_ids,
            facility_customer_ids,
            _codes(FACILITY_TYPES, f_kind),
            _codes(("CNY",), np.zeros(n_fac, dtype=np.int64)),
            _timestamps(f_open),
            _timestamps(f_maturity),
            pa.array(limit),
            pa.array(np.maximum(_cents(outstanding), 0.0)),
        ],
        schema=SCHEMAS_ARROW["credit_facilities"],
    )
    repayments = pa.table(
        [
            facility_ids.take(pa.array(r_fac)),
            facility_customer_ids.take(pa.array(r_fac)),
            pa.array(r_no),
            _timestamps(due),
            pa.array(amount_due),
            _timestamps(np.where(unpaid, 0, paid_day), mask=unpaid),
            pa.array(np.where(unpaid, 0.0, paid_amount)),
        ],
        schema=SCHEMAS_ARROW["repayments"],
    )
    return facilities, repayments, default_day, default_type


def _statements(
    rng: np.random.Generator,
    config: GeneratorConfig,
    world: _World,
    cust: _Customers,
    health: np.ndarray,
    stop_day: np.ndarray,
    digits: int,
) -> pa.Table:
    """Quarterly statements (annual for some micro firms) published 1-4 months after period end."""
    n = len(cust.mu)
    epoch_month = world.month_start[:-1].astype("datetime64[D]").astype("datetime64[M]")
    calendar_month = epoch_month.astype(np.int64) % 12 + 1
    quarter_end = np.flatnonzero(calendar_month % 3 == 0)
    period_end = world.month_start[quarter_end + 1] - 1
    annual = rng.random(n) < _SIZE_ANNUAL_REPORTER[cust.size]
    is_december = calendar_month[quarter_end] == 12
    candidate = (
        (period_end[None, :] >= cust.onboarding[:, None] - 365)
        & (period_end[None, :] < stop_day[:, None])
        & (period_end[None, :] <= world.end_day)
        & (~annual[:, None] | is_december[None, :])
    )
    h_stock = health[:, quarter_end]
    missing = rng.random(h_stock.shape) < config.mess_rate * 0.5 + expit(-4.5 - 1.2 * h_stock)
    lag = np.clip(
        25
        + rng.integers(0, 50, h_stock.shape)
        + 30 * np.maximum(-h_stock, 0.0)
        + 30 * annual[:, None],
        20,
        120,
    ).astype(np.int64)
    lag += np.where(
        rng.random(h_stock.shape) < config.mess_rate, rng.integers(60, 150, h_stock.shape), 0
    )
    published = np.maximum(period_end[None, :] + lag, cust.onboarding[:, None])
    keep = candidate & ~missing & (published <= world.end_day)
    row, column = np.nonzero(keep)  # row-major: sorted by customer, then period end
    k = len(row)

    months = np.where(annual[row], 12, 3)
    cumulative = np.concatenate([np.zeros((n, 1)), np.cumsum(health, axis=1)], axis=1)
    upper = quarter_end[column] + 1
    lower = np.maximum(upper - months, 0)
    h_flow = (cumulative[row, upper] - cumulative[row, lower]) / (upper - lower)
    h = h_stock[row, column]
    industry = cust.industry[row]

    def noise(scale: float) -> np.ndarray:
        return rng.normal(0.0, scale, k)

    revenue = cust.revenue[row] * np.exp(0.35 * h_flow + noise(0.06)) * months / 12
    total_assets = (
        cust.revenue[row] / _INDUSTRY_ASSET_TURNOVER[industry] * np.exp(0.08 * h + noise(0.05))
    )
    leverage = 1.2 * expit(-0.5 + _INDUSTRY_LEVERAGE[industry] - 0.9 * h + noise(0.3))
    total_liabilities = leverage * total_assets
    current_assets = total_assets * np.clip(
        _INDUSTRY_CURRENT_SHARE[industry] * np.exp(noise(0.1)), 0.05, 0.95
    )
    current_ratio = np.exp(0.3 + 0.3 * h + noise(0.2))
    current_liabilities = np.minimum(current_assets / current_ratio, 0.95 * total_liabilities)
    cash = current_assets * expit(-1.3 + 0.5 * h + noise(0.3))
    margin = np.clip(0.07 + 0.05 * h_flow + noise(0.025), -0.5, 0.6)
    operating_costs = revenue * (1.0 - margin)
    interest_rate = np.maximum(0.045 + 0.015 * expit(-h) + noise(0.003), 0.01)
    interest_expense = total_liabilities * interest_rate * months / 12
    pre_tax = revenue * margin - interest_expense
    net_income = pre_tax - 0.25 * np.maximum(pre_tax, 0.0)
    operating_cash_flow = (
        net_income + 0.04 * total_assets * months / 12 + revenue * (0.03 * h_flow + noise(0.04))
    )
    audited = rng.random(k) < _SIZE_AUDITED[cust.size[row]]
    amounts = [
        total_assets,
        total_liabilities,
        current_assets,
        current_liabilities,
        cash,
        revenue,
        operating_costs,
        net_income,
        operating_cash_flow,
        interest_expense,
    ]
    rounded = [_cents(a) for a in amounts]
    # Rounding to cents must not break the balance-sheet inequalities of the contract.
    rounded[2] = np.minimum(rounded[2], rounded[0])
    rounded[4] = np.minimum(rounded[4], rounded[2])
    return pa.table(
        [
            _ids("C", [(cust.number[row], digits)], k),
            _timestamps(period_end[column]),
            _timestamps(published[row, column]),
            pa.array(months.astype(np.int64)),
            pa.array(audited),
            *[pa.array(a) for a in rounded],
        ],
        schema=SCHEMAS_ARROW["financial_statements"],
    )


def _transactions(
    rng: np.random.Generator,
    config: GeneratorConfig,
    world: _World,
    cust: _Customers,
    health: np.ndarray,
    stop_day: np.ndarray,
    default_day: np.ndarray,
    digits: int,
) -> pa.Table:
    """Account transactions: volume by size, inflows and concentration follow health."""
    n, n_months = health.shape
    month_start = world.month_start
    lower = np.maximum(month_start[None, :-1], cust.onboarding[:, None])
    upper = np.minimum(np.minimum(month_start[None, 1:], world.end_day), default_day[:, None])
    span = np.maximum(upper - lower, 0)
    share_of_month = span / np.diff(month_start)[None, :]
    stopped = month_start[None, :-1] >= stop_day[:, None]
    dormant = rng.random((n, n_months)) < (
        config.mess_rate * 0.6 + expit(-5.0 - 1.5 * health) + 0.3 * stopped
    )
    per_month = _SIZE_TXN_PER_MONTH[cust.size]
    rate = per_month[:, None] * np.exp(0.15 * health) * share_of_month * np.where(stopped, 0.5, 1.0)
    counts = np.where(dormant | (span == 0), 0, rng.poisson(rate)).ravel()

    cell = np.repeat(np.arange(n * n_months), counts)
    total = len(cell)
    customer = cell // n_months
    h = health.ravel()[cell]
    is_stopped = stopped.ravel()[cell]
    inflow = rng.random(total) < expit(0.1 + 0.3 * h) * np.where(is_stopped, 0.5, 1.0)
    monthly_revenue = cust.revenue[customer] / 12 / (per_month[customer] * 0.5)
    mean_amount = np.where(
        inflow,
        monthly_revenue * np.exp(0.35 * h) * np.where(is_stopped, 0.4, 1.0),
        monthly_revenue * 0.93 * np.exp(0.1 * h),
    )
    sigma = 0.7 + 0.25 * np.maximum(-h, 0.0)  # volatility rises as health falls
    amount = np.maximum(
        _cents(np.exp(np.log(mean_amount) - sigma**2 / 2 + sigma * rng.standard_normal(total))),
        0.01,
    )
    n_counterparties = np.maximum(
        np.round(_SIZE_COUNTERPARTIES[cust.size] * rng.uniform(0.6, 1.4, n)), 2
    ).astype(np.int64)
    pool = rng.integers(0, 10**_COUNTERPARTY_DIGITS, (n, int(n_counterparties.max())))
    # U**alpha with alpha > 1 piles mass on the main counterparties: weak firms concentrate.
    concentration = np.exp(0.5 - 0.4 * h)
    pick = np.floor(n_counterparties[customer] * rng.random(total) ** concentration).astype(
        np.int64
    )
    counterparty = pool[customer, pick]
    channel = _choose(rng, _CHANNEL_BY_SIZE[cust.size[customer]])
    seconds = (rng.random(total) * (span.ravel()[cell] * _SECONDS_PER_DAY)).astype(np.int64)
    ts = (lower.ravel()[cell] * _SECONDS_PER_DAY + seconds) * 10**9  # whole seconds

    order = np.lexsort((ts, customer))
    customer, ts = customer[order], ts[order]
    sequence = _cumcount(customer) + 1
    numbers = cust.number[customer]
    return pa.table(
        [
            _ids("T", [(numbers, digits), (sequence, _TXN_SEQ_DIGITS)], total),
            _ids("C", [(numbers, digits)], total),
            pa.array(ts.astype("datetime64[ns]"), type=pa.timestamp("ns")),
            pa.array(amount[order]),
            _codes(("in", "out"), np.where(inflow[order], 0, 1)),
            _ids("P", [(counterparty[order], _COUNTERPARTY_DIGITS)], total),
            _codes(CHANNELS, channel[order]),
        ],
        schema=SCHEMAS_ARROW["transactions"],
    )


def _truth(
    world: _World,
    cust: _Customers,
    health: np.ndarray,
    pd12: np.ndarray,
    alive_from: np.ndarray,
    default_day: np.ndarray,
    customer_ids: pa.Array,
) -> pa.Table:
    """True PD and health for every customer and month (first of month) while alive."""
    n_months = world.n_months
    alive = (np.arange(n_months)[None, :] >= alive_from[:, None]) & (
        world.month_start[None, :-1] < default_day[:, None]
    )
    row, month = np.nonzero(alive)
    return pa.table(
        [
            customer_ids.take(pa.array(row)),
            _timestamps(world.month_start[month]),
            pa.array(pd12[row, month]),
            pa.array(health[row, month]),
        ],
        schema=TRUTH_SCHEMA,
    )


# --- public entry points -----------------------------------------------------------------------


def _chunks(config: GeneratorConfig) -> tuple[_World, list[tuple[int, int, int]]]:
    world = _build_world(config)
    plan = [
        (index, first, min(config.chunk_customers, config.customers - first))
        for index, first in enumerate(range(0, config.customers, config.chunk_customers))
    ]
    return world, plan


class _Tally:
    """Accumulates row counts and default statistics over chunks."""

    def __init__(self, world: _World) -> None:
        self.world = world
        self.rows = dict.fromkeys(TABLES, 0)
        self.truth_rows = 0
        self.cohort = np.zeros(len(world.years), dtype=np.int64)
        self.cohort_defaults = np.zeros(len(world.years), dtype=np.int64)

    def add(self, chunk: _Chunk) -> None:
        for name, table in (*chunk.tables.items(), *chunk.judgement.items()):
            self.rows[name] = self.rows.get(name, 0) + table.num_rows
        self.truth_rows += chunk.truth.num_rows
        self.cohort += chunk.cohort
        self.cohort_defaults += chunk.cohort_defaults

    def summary(self, config: GeneratorConfig) -> GenerationSummary:
        years = self.world.years
        return GenerationSummary(
            customers=config.customers,
            seed=config.seed,
            start=config.start,
            end=config.end,
            row_counts=dict(self.rows),
            truth_rows=self.truth_rows,
            defaults=self.rows["defaults"],
            yearly_default_rates={
                year: float(d / c) if c else 0.0
                for year, d, c in zip(years, self.cohort_defaults, self.cohort, strict=True)
            },
            yearly_cohort_sizes={year: int(c) for year, c in zip(years, self.cohort, strict=True)},
        )


def generate_tables(config: GeneratorConfig) -> tuple[RawTables, pd.DataFrame]:
    """Generate a portfolio in memory (for tests and demos; use ``generate`` for large ones).

    Returns:
        The raw tables and the truth frame (customer_id, month, true_pd_12m, health).
    """
    raw, truth, _ = _generate_in_memory(config, None)
    return raw, truth


def generate_with_judgement(
    config: GeneratorConfig, judgement: JudgementSpec
) -> tuple[RawTables, pd.DataFrame, JudgementTables]:
    """`generate_tables` plus the optional assessments and overrides tables.

    The raw tables and the truth are the same as `generate_tables` gives for ``config``.
    """
    raw, truth, extra = _generate_in_memory(config, judgement)
    return (
        raw,
        truth,
        extra or JudgementTables(empty_table("assessments"), empty_table("overrides")),
    )


def generate_with_records(
    config: GeneratorConfig, judgement: JudgementSpec, records: RecordsSpec
) -> tuple[RawTables, pd.DataFrame, JudgementTables, RecordTables]:
    """`generate_with_judgement` plus the optional reviews and contract terms tables.

    The other tables are the same as `generate_with_judgement` gives for ``config``.
    """
    world, plan = _chunks(config)
    chunks = [_simulate_chunk(config, world, *step, judgement, records) for step in plan]
    raw, truth, extra = _collect(chunks, judgement)
    frames = {
        name: pa.concat_tables([chunk.judgement[name] for chunk in chunks]).to_pandas()
        for name in RECORD_TABLES
    }
    judged = extra or JudgementTables(empty_table("assessments"), empty_table("overrides"))
    return raw, truth, judged, RecordTables(**frames)


def _generate_in_memory(
    config: GeneratorConfig, judgement: JudgementSpec | None
) -> tuple[RawTables, pd.DataFrame, JudgementTables | None]:
    world, plan = _chunks(config)
    chunks = [_simulate_chunk(config, world, *step, judgement) for step in plan]
    return _collect(chunks, judgement)


def _collect(
    chunks: list[_Chunk], judgement: JudgementSpec | None
) -> tuple[RawTables, pd.DataFrame, JudgementTables | None]:
    tables = {
        name: pa.concat_tables([chunk.tables[name] for chunk in chunks]).to_pandas()
        for name in TABLES
    }
    truth = pa.concat_tables([chunk.truth for chunk in chunks]).to_pandas()
    extra = None
    if judgement is not None:
        extra = JudgementTables(
            **{
                name: pa.concat_tables([chunk.judgement[name] for chunk in chunks]).to_pandas()
                for name in ("assessments", "overrides")
            }
        )
    return RawTables.from_mapping(tables), truth, extra


def generate(
    config: GeneratorConfig,
    out_dir: Path | str,
    progress: Callable[[int, int], None] | None = None,
    judgement: JudgementSpec | None = None,
    records: RecordsSpec | None = None,
) -> GenerationSummary:
    """Generate a portfolio into ``out_dir`` chunk by chunk, atomically.

    Writes one Parquet file per raw table (one row group per chunk) and
    ``_truth/true_pd.parquet``. Everything goes to a staging folder next to ``out_dir``
    that replaces ``out_dir`` only once complete, so a failed run leaves nothing behind
    and keeps any previous ``out_dir``.

    Args:
        config: What to generate.
        out_dir: Target raw folder (replaced if it exists).
        progress: Called with (customers done, customers total) after each chunk.
        judgement: also write the optional ``assessments`` and ``overrides`` tables, drawn
            from their own random stream (the other tables do not change).
        records: also write the optional ``reviews`` and ``contract_terms`` tables, from
            their own random stream.

    Returns:
        Row counts and yearly default rates of the generated portfolio.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.staging."))
    try:
        (staging / TRUTH_DIR).mkdir()
        world, plan = _chunks(config)
        tally = _Tally(world)
        targets = {name: (staging / f"{name}.parquet", SCHEMAS_ARROW[name]) for name in TABLES}
        targets["_truth"] = (staging / TRUTH_DIR / TRUE_PD_FILE, TRUTH_SCHEMA)
        if judgement is not None:
            targets["assessments"] = (staging / "assessments.parquet", ASSESSMENTS_ARROW)
            targets["overrides"] = (staging / "overrides.parquet", OVERRIDES_ARROW)
        if records is not None:
            targets["reviews"] = (staging / "reviews.parquet", REVIEWS_ARROW)
            targets["contract_terms"] = (staging / "contract_terms.parquet", CONTRACT_TERMS_ARROW)
        writers = {
            name: pq.ParquetWriter(path, schema, **_WRITE_OPTIONS)
            for name, (path, schema) in targets.items()
        }
        try:
            for step in plan:
                chunk = _simulate_chunk(config, world, *step, judgement, records)
                parts = (*chunk.tables.items(), *chunk.judgement.items(), ("_truth", chunk.truth))
                for name, table in parts:
                    if table.num_rows:
                        writers[name].write_table(table, row_group_size=table.num_rows)
                tally.add(chunk)
                if progress is not None:
                    progress(step[1] + step[2], config.customers)
        finally:
            for writer in writers.values():
                writer.close()
        replace_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return tally.summary(config)


_WRITE_OPTIONS: Final[dict[str, object]] = {
    "compression": "zstd",
    "use_dictionary": True,
    "write_statistics": True,
    "version": "2.6",
}
