r"""Digest of the raw records a customer was rated from: one SHA-256 per customer.

Batch scoring records, per customer, which records it read (the point-in-time tables of the
contract) without keeping them: a SHA-256 over a canonical text of the customer's rows. Replay
reads the customer's records again (``RawSource.read_customers_at``) and recomputes the digest
with the same function, so it can tell "the source changed since" from "the model answers
differently".

Canonical text: for each contract table in contract order, the table name, then the
customer's rows, each row its contract columns in contract order, values typed by the
contract (dates and times as ISO text to the microsecond, numbers as Polars renders a
Float64 or Int64, booleans as ``true``/``false``, missing as ``\\N``), fields separated by
``\\x1f``, rows sorted, one per line. Row order and pandas dtypes of the source do not matter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd
import polars as pl

from features.schema import SCHEMAS, TABLES

NULL = "\\N"
"""How a missing value is written."""
_SEP = "\x1f"


def _canonical(column: str, dtype: str) -> pl.Expr:
    """``column`` as canonical text, by its contract dtype."""
    col = pl.col(column)
    if dtype.startswith("datetime64"):
        text = col.cast(pl.Datetime("us")).dt.strftime("%Y-%m-%dT%H:%M:%S%.6f")
    elif dtype.startswith("float"):
        text = col.cast(pl.Float64).cast(pl.String)
    elif dtype.startswith("int"):
        text = col.cast(pl.Int64).cast(pl.String)
    elif dtype == "bool":
        text = col.cast(pl.Boolean).cast(pl.String)
    else:
        text = col.cast(pl.String)
    return text.fill_null(NULL)


def _lines(table: str, frame: pd.DataFrame, ids: Sequence[str]) -> pl.DataFrame:
    """``customer_id`` and the canonical line of each row of ``ids``'s records in ``frame``."""
    columns = [name for name in SCHEMAS[table].columns if name in frame.columns]
    dtypes = {name: str(column.dtype) for name, column in SCHEMAS[table].columns.items()}
    mine = frame.loc[frame["customer_id"].astype(str).isin(ids), columns]
    data = pl.from_pandas(mine.reset_index(drop=True), include_index=False)
    if data.is_empty():
        return pl.DataFrame(schema={"customer_id": pl.String(), "line": pl.String()})
    return data.select(
        pl.col("customer_id").cast(pl.String),
        pl.concat_str([_canonical(c, dtypes[c]) for c in columns], separator=_SEP).alias("line"),
    ).sort("customer_id", "line")


def record_digests(
    tables: Mapping[str, pd.DataFrame], customer_ids: Iterable[str]
) -> dict[str, tuple[str, dict[str, int]]]:
    """Per customer, the SHA-256 of its records in ``tables`` and its row count per table.

    Args:
        tables: the contract tables (every one of `features.schema.TABLES`), as read; a
            customer absent from a table has no rows there.
        customer_ids: the customers to digest (call it chunk by chunk to bound memory).

    Returns:
        customer id -> (hex digest, rows per table).
    """
    ids = [str(c) for c in customer_ids]
    hashers = {cid: hashlib.sha256() for cid in ids}
    counts: dict[str, dict[str, int]] = {cid: dict.fromkeys(TABLES, 0) for cid in ids}
    for table in TABLES:
        for cid in ids:
            hashers[cid].update(f"#{table}\n".encode())
        lines = _lines(table, tables[table], ids)
        if lines.is_empty():
            continue
        grouped = lines.group_by("customer_id", maintain_order=True).agg(
            pl.col("line").str.join("\n"), pl.len().alias("n")
        )
        for cid, text, n in grouped.iter_rows():
            hashers[cid].update(text.encode())
            hashers[cid].update(b"\n")
            counts[cid][table] = int(n)
    return {cid: (hashers[cid].hexdigest(), counts[cid]) for cid in ids}
