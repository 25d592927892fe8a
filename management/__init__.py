"""People's decisions on the rating, event-sourced on the audit chain.

Every action (an assessment, an override proposed, approved, rejected or expired, an expert
rating) is an `audit.EventRecord` appended to the audit store; every read is a projection over
its events. `management.proposals` is the generic four-eyes mechanism (propose, then one
decision by somebody else); `management.judgement` uses it for overrides and expert ratings
and records qualitative assessments.
"""

from management.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    ManagementError,
    NotFoundError,
)
from management.events import Actor, iter_events
from management.proposals import (
    Proposal,
    ProposalState,
    ProposalStatus,
    check_decider,
    decide,
    expire_due,
    get_proposal,
    list_proposals,
    propose,
)

__all__ = [
    "Actor",
    "ConflictError",
    "ForbiddenError",
    "InvalidInputError",
    "ManagementError",
    "NotFoundError",
    "Proposal",
    "ProposalState",
    "ProposalStatus",
    "check_decider",
    "decide",
    "expire_due",
    "get_proposal",
    "iter_events",
    "list_proposals",
    "propose",
]
