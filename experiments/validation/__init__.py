"""Model validation: the cohort's simulated statistics against DOMAIN.md's targets, the long-horizon soak
against closed forms and rates, and docs/model.md's tables generated from the code."""
