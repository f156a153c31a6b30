"""Configuration of the command lines: the typed Hydra schemas, Hydra's own groups, the checks Hydra does not make."""
