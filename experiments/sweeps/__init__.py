"""Sweep workflow: reading a sweep folder, re-runs, sweeper objectives, Pareto fronts and their figures."""
