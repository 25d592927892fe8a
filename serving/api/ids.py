"""The one parser of record ids in paths and queries."""

from __future__ import annotations

from serving.api.errors import invalid

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
