"""Verification of a chain: links, record hashes, request bodies, ids and checkpoints.

Pure functions over rows read by the store (any backend), so every database verifies alike.
"""

from __future__ import annotations

import heapq
import hmac
from collections.abc import Iterable, Iterator
from typing import Any

from audit.records import (
    GENESIS_HASH,
    RecordCheck,
    VerifyResult,
    body_digest,
    event_hash,
    record_hash,
    sign,
)

Row = dict[str, Any]


def row_hash(row: Row, is_event: bool) -> str:
    """The hash a stored row should have (decision or event rule)."""
    return (event_hash if is_event else record_hash)(row["prev_hash"], row)


def merged(decisions: Iterable[Row], events: Iterable[Row]) -> Iterator[tuple[Row, bool]]:
    """Decision and event rows (each ordered by id) as one stream by id: ``(row, is_event)``."""
    tagged = heapq.merge(
        ((row["id"], 0, row) for row in decisions), ((row["id"], 1, row) for row in events)
    )
    for _, tag, row in tagged:
        yield row, bool(tag)


def good_body_digests(bodies: Iterable[Any]) -> set[str]:
    """Keys of the ``(sha256, body)`` rows whose body still hashes to its key."""
    return {str(digest) for digest, body in bodies if body_digest(bytes(body)) == digest}


def verify_rows(
    rows: Iterable[tuple[Row, bool]],
    n_rows: int,
    checkpoints: list[tuple[Any, ...]],
    key: bytes,
    checkpoint_every: int,
    good_bodies: set[str],
) -> VerifyResult:
    """Check every record of a chain, its request body and the checkpoints.

    Args:
        rows: Every record as ``(row, is_event)``, oldest first (streamed: a log need not fit
            in memory); ``payload`` is the stored text.
        n_rows: How many records there are.
        checkpoints: ``(id, record_count, head_hash, signature)`` rows, oldest first.
        key: Checkpoint HMAC key.
        checkpoint_every: Checkpoint interval the log was written with.
        good_bodies: Digests of the stored bodies whose content still hashes to their key.
    """
    n_checks = len(checkpoints)

    def bad(record_id: int, problem: str) -> VerifyResult:
        return VerifyResult(False, n_rows, n_checks, record_id, problem)

    due = {count for _, count, _, _ in checkpoints}
    heads: dict[int, str] = {}
    prev_hash = GENESIS_HASH
    position = 0
    for position, (row, is_event) in enumerate(rows, start=1):
        if row["id"] < position:
            return bad(row["id"], f"record {row['id']} appears twice")
        if row["id"] != position:
            return bad(position, f"record {position} is missing (next stored id is {row['id']})")
        if row["prev_hash"] != prev_hash:
            return bad(
                position, f"record {position}: prev_hash does not link to record {position - 1}"
            )
        if row_hash(row, is_event) != row["hash"]:
            return bad(position, f"record {position}: content does not match its hash")
        digest = None if is_event else row["request_sha256"]
        if digest is not None and digest not in good_bodies:
            return bad(position, f"record {position}: request body missing or altered")
        prev_hash = row["hash"]
        if position in due:
            heads[position] = prev_hash
    n_rows = position  # rows appended between the count and the read are verified too

    for number, (check_id, count, head_hash, signature) in enumerate(checkpoints, start=1):
        if check_id != number or count != number * checkpoint_every:
            return bad(
                min(count, n_rows + 1),
                f"checkpoint {number} is missing or out of sequence (count {count})",
            )
        if not hmac.compare_digest(sign(key, count, head_hash), signature):
            return bad(min(count, n_rows + 1), f"checkpoint {number}: bad signature")
        if count > n_rows:
            return bad(
                n_rows + 1,
                f"tail cut off: checkpoint {number} covers {count} records, the log holds {n_rows}",
            )
        if heads.get(count) != head_hash:
            return bad(count, f"checkpoint {number}: head hash differs from record {count}")
    expected = n_rows // checkpoint_every
    if n_checks < expected:
        return bad(
            (n_checks + 1) * checkpoint_every,
            f"checkpoint {n_checks + 1} (due at record {(n_checks + 1) * checkpoint_every}) "
            "is missing",
        )
    return VerifyResult(True, n_rows, n_checks)


def check_row(
    row: Row, is_event: bool, previous_hash: str | None, body: bytes | None
) -> RecordCheck:
    """Local integrity of one stored row: its hash, its body and its link to the record before.

    Args:
        row: The stored row (``payload`` as the stored text).
        is_event: Whether it is an event (else a decision).
        previous_hash: Hash of record ``id - 1``, None if there is no such record.
        body: The stored request body of a decision (None if missing).
    """
    record_id = int(row["id"])
    hash_ok = row_hash(row, is_event) == row["hash"]
    digest = None if is_event else row.get("request_sha256")
    body_ok = digest is None or (body is not None and body_digest(body) == digest)
    expected_prev = GENESIS_HASH if record_id == 1 else previous_hash
    link_ok = expected_prev is not None and expected_prev == row["prev_hash"]
    problem = None
    if not hash_ok:
        problem = f"record {record_id}: content does not match its hash"
    elif not body_ok:
        problem = f"record {record_id}: request body missing or altered"
    elif expected_prev is None:
        problem = f"record {record_id - 1} (before record {record_id}) is missing"
    elif not link_ok:
        problem = f"record {record_id}: prev_hash does not link to record {record_id - 1}"
    return RecordCheck(id=record_id, hash_ok=hash_ok and body_ok, link_ok=link_ok, problem=problem)
