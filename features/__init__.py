"""riskgrade features package."""
