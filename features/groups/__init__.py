"""riskgrade features/groups package."""
