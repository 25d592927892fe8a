"""riskgrade training package."""
