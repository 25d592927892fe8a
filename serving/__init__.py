"""riskgrade serving package."""
