"""riskgrade monitoring package."""
