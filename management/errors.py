"""Errors of the management package: each has a stable ``code`` (and the field at fault).

The kinds map onto HTTP in the service: `NotFoundError` 404, `ForbiddenError` 403,
`ConflictError` 409, `InvalidInputError` 422. An audit store that cannot commit raises
`audit.AuditUnavailableError` (503): nothing was recorded then.
"""

from __future__ import annotations

from features.errors import RiskgradeError


class ManagementError(RiskgradeError):
    """A management action refused; ``code`` is stable, ``field`` names the bad input."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class NotFoundError(ManagementError, KeyError):
    """No such proposal, assessment or customer (``not_found``)."""

    def __str__(self) -> str:
        return self.message


class ForbiddenError(ManagementError):
    """The actor may not do this (``four_eyes``, ``not_an_approver``, ``needs_senior_approver``)."""


class ConflictError(ManagementError):
    """The state forbids it: ``already_decided``, ``expired``, ``no_model_decision``..."""


class InvalidInputError(ManagementError, ValueError):
    """Bad input (unknown customer, date in the future, unknown grade...)."""


class ImportReportError(InvalidInputError):
    """A file to import has problems: every one is listed, nothing was written."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        listed = "\n".join(f"  {p}" for p in problems)
        super().__init__(
            "invalid_file", f"{source}: {len(problems)} problem(s), nothing imported:\n{listed}"
        )
