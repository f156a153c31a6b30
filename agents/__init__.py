"""painloop's policies: baselines, RL glue and the stable-baselines3 adapter.

Imports no Hydra; torch only where a learning library needs it.
"""
