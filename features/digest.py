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
from collections.abc import Iterable, Iterator, Mapping, Sequence

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


def _table(table: str, frame: pd.DataFrame) -> pl.DataFrame:
    """``customer_id`` and the canonical line of each row of ``frame``."""
    columns = [name for name in SCHEMAS[table].columns if name in frame.columns]
    dtypes = {name: str(column.dtype) for name, column in SCHEMAS[table].columns.items()}
    data = pl.from_pandas(frame[columns].reset_index(drop=True), include_index=False)
    if data.is_empty():
        return pl.DataFrame(schema={"customer_id": pl.String(), "line": pl.String()})
    return data.select(
        pl.col("customer_id").cast(pl.String),
        pl.concat_str([_canonical(c, dtypes[c]) for c in columns], separator=_SEP).alias("line"),
    )


def iter_record_digests(
    tables: Mapping[str, pd.DataFrame], chunks: Iterable[Sequence[str]]
) -> Iterator[dict[str, tuple[str, dict[str, int]]]]:
    """`record_digests` of each chunk of customers, the tables split by chunk in one pass.

    Each table is turned into canonical lines and split by chunk once (one copy of the
    tables, as text, lives while the chunks are digested); a chunk's digests are computed
    when it is reached.

    Args:
        tables: the contract tables (every one of `features.schema.TABLES`).
        chunks: the customers, chunk by chunk (a customer in one chunk only).

    Yields:
        Per chunk, customer id -> (hex digest, rows per table).
    """
    groups = [[str(c) for c in chunk] for chunk in chunks]
    chunk_of = pl.DataFrame(
        {
            "customer_id": [c for chunk in groups for c in chunk],
            "_chunk": [k for k, chunk in enumerate(groups) for _ in chunk],
        },
        schema={"customer_id": pl.String(), "_chunk": pl.Int64()},
    )
    parts: dict[str, dict[int, pl.DataFrame]] = {}
    for table in TABLES:
        lines = _table(table, tables[table]).join(chunk_of, on="customer_id", how="inner")
        split = lines.partition_by("_chunk", as_dict=True, include_key=False)
        parts[table] = {int(key[0]): frame for key, frame in split.items()}
    for k, ids in enumerate(groups):
        yield _digests({table: parts[table].pop(k, None) for table in TABLES}, ids)


def _digests(
    lines: Mapping[str, pl.DataFrame | None], ids: Sequence[str]
) -> dict[str, tuple[str, dict[str, int]]]:
    hashers = {cid: hashlib.sha256() for cid in ids}
    counts: dict[str, dict[str, int]] = {cid: dict.fromkeys(TABLES, 0) for cid in ids}
    for table in TABLES:
        for cid in ids:
            hashers[cid].update(f"#{table}\n".encode())
        frame = lines[table]
        if frame is None or frame.is_empty():
            continue
        grouped = (
            frame.sort("customer_id", "line")
            .group_by("customer_id", maintain_order=True)
            .agg(pl.col("line").str.join("\n"), pl.len().alias("n"))
        )
        for cid, text, n in grouped.iter_rows():
            hashers[cid].update(text.encode())
            hashers[cid].update(b"\n")
            counts[cid][table] = int(n)
    return {cid: (hashers[cid].hexdigest(), counts[cid]) for cid in ids}


def record_digests(
    tables: Mapping[str, pd.DataFrame], customer_ids: Iterable[str]
) -> dict[str, tuple[str, dict[str, int]]]:
    """Per customer, the SHA-256 of its records in ``tables`` and its row count per table.

    Args:
        tables: the contract tables (every one of `features.schema.TABLES`), as read; a
            customer absent from a table has no rows there.
        customer_ids: the customers to digest.

    Returns:
        customer id -> (hex digest, rows per table).
    """
    return next(iter_record_digests(tables, [list(customer_ids)]))
