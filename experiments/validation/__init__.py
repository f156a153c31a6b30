"""Model validation: the cohort's simulated statistics against DOMAIN.md's targets."""
