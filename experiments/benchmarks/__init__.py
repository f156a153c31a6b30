"""Benchmarks: learning, training throughput and peer simulators (sections of ``python -m experiments.benchmark``)."""
