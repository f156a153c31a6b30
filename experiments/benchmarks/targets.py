"""Floors and targets: a section's figures checked against thresholds, and their printed form.

A specification is ``(key, label, path into the results, threshold)``; a
check entry records the measured median and whether it is met (``None``:
not measured, never counted as met).
"""

from __future__ import annotations

from collections.abc import Sequence


def lookup(results: dict, path: Sequence[str]) -> float | None:
    node = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return float(node)
    return node.get("median") if isinstance(node, dict) else None


def check(results: dict, specs, source: str, lower_is_better: bool = False) -> list[dict]:
    out = []
    for key, label, path, threshold in specs:
        measured = lookup(results, path)
        met = None if measured is None else bool(measured <= threshold if lower_is_better else measured >= threshold)
        out.append(
            {
                "key": key,
                "label": label,
                "source": source,
                "threshold": threshold,
                "measured_median": measured,
                "met": met,
            }
        )
    return out


def render_targets(report: dict, title: str) -> str:
    lines = [f"{title}:"]
    for f in report["targets"]:
        state = "not measured" if f["met"] is None else ("met" if f["met"] else "NOT met")
        value = "-" if f["measured_median"] is None else f"{f['measured_median']:,.2f}"
        lines.append(f"  {f['label']}: measured {value} -> {state}")
    return "\n".join(lines)
