"""riskgrade rating package."""
