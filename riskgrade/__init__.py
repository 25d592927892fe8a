"""riskgrade riskgrade package."""
