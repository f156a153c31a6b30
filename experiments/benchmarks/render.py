"""The console form of a benchmark report: each section's own renderer, chosen by the report's section."""

from __future__ import annotations

from experiments.benchmarks.evaluation import render_evaluation
from experiments.benchmarks.learning_table import render_learning
from experiments.benchmarks.peers import render_peers
from experiments.benchmarks.simulator import render_simulator
from experiments.benchmarks.targets import render_targets
from experiments.benchmarks.training import render_training


def render(report: dict) -> str:
    """The printed report of one section, or of every section of ``--section all``."""
    if report["section"] == "all":
        return "\n\n".join(f"=== {name} ===\n{render(sub)}" for name, sub in report["sections"].items())
    if report["section"] == "evaluation":
        return render_evaluation(report)
    if report["section"] == "training":
        return render_training(report["results"]) + "\n" + render_targets(report, "targets (issue 7)")
    if report["section"] == "peers":
        return render_peers(report["results"], report["results"].get("painloop_single_env"))
    if report["section"] == "learning":
        return render_learning(report["results"])
    return render_simulator(report)
