"""The one parser of record ids in paths and queries, and the stored decision they name."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from audit import AuditRecordNotFoundError, AuditStore, StoredDecision
from serving.api.errors import ApiError, invalid

MAX_ID_LENGTH = 64


def parse_record_id(raw: str) -> int | str:
    """A row id (ASCII digits) as ``int``, anything else as a decision id ``str``.

    Only ASCII digits make a row id: ``str.isdigit`` is also true for ``"²"``, which ``int``
    refuses. Row ids out of range (0, beyond int64) and unknown decision ids are left to the
    store, which answers not found (404).

    Raises:
        ApiError: 422 when the id is empty or longer than 64 characters.
    """
    if not raw or len(raw) > MAX_ID_LENGTH:
        raise invalid("id", f"1 to {MAX_ID_LENGTH} characters")
    return int(raw) if raw.isascii() and raw.isdigit() else raw


async def stored_decision(audit: AuditStore, raw: str) -> StoredDecision:
    """The stored decision that ``raw`` (a row id or decision id) names.

    Raises:
        ApiError: 422 for a malformed id (see `parse_record_id`), 404 when none has it.
    """
    record_id = parse_record_id(raw)
    try:
        return await run_in_threadpool(audit.show, record_id)
    except AuditRecordNotFoundError as error:
        raise ApiError(404, "not_found", str(error.args[0])) from error
