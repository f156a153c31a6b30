"""One device config per patient: mapped directly from a calibrated detector, or distilled; then validated.

``build_configs`` builds the configs of a ``Plan`` (not written, not yet
validated as a set); ``validate_all`` checks every one (schema, device ranges,
encodings, safety, fit to the patient) and refuses the whole export, listing
every patient's violations, before any file is written.
"""

from __future__ import annotations

from collections.abc import Sequence

from agents.config_format import build_config
from agents.config_policy import check_patient_fit
from agents.controller_config import ConfigError, format_violations, validate_config
from agents.distill import distill
from agents.export import calibrated_detectors, config_from_detector, provenance, stimulation_fields
from experiments.exporting.plan import Plan, patient_file_stem


def build_configs(plan: Plan, progress=None) -> tuple[list[dict], list[dict]]:
    """One config per patient (not written, not yet validated as a set) and the fit information."""
    dt = plan.settings.dt_s
    run = plan.spec.params.get("path") if plan.spec.kind == "run" else None
    cohort = {"name": plan.cohort, "seed": plan.cohort_seed, "n_patients": len(plan.patients)}
    detectors = None
    if plan.spec.needs_detector:
        detectors = calibrated_detectors(plan.spec, plan.patients, dt, plan.seed)
    if plan.method == "direct":
        configs = []
        for p, det in zip(plan.patients, detectors, strict=True):
            prov = provenance(p, plan.source, plan.spec.kind, dt, run, cohort, fit=dict(det.fit) | {"method": "direct"})
            configs.append(config_from_detector(det, p, prov, plan.target))
        return configs, [dict(c["provenance"]["fit"]) for c in configs]

    def make_config(i, det, states, fit, ld1=None):
        p = plan.patients[i]
        prov = provenance(p, plan.source, plan.spec.kind, dt, run, cohort, fit=fit)
        return build_config(plan.target, det, states, ld1=ld1, provenance=prov, **stimulation_fields(p))

    extra = (lambda i: {"detector": detectors[i]}) if detectors is not None else None
    return distill(
        lambda: plan.spec.build(dt, plan.seed), plan.patients, plan.target, dt, plan.distill, make_config,
        contexts_extra=extra, initial_state=plan.settings.initial_state, progress=progress,
    )


def validate_all(plan: Plan, configs: Sequence[dict]) -> None:
    """Every config checked; one ``PL-CONFIG-INVALID`` (or ``-SCHEMA``) listing every patient's violations."""
    messages, codes, all_violations = [], set(), []
    for p, c in zip(plan.patients, configs, strict=True):
        found = validate_config(c, plan.settings.dt_s)
        if found:
            messages.append(format_violations(found, f"patient {patient_file_stem(p)}"))
            codes.update(v.code for v in found)
            all_violations += found
        else:
            check_patient_fit(c, p.params, f"patient {patient_file_stem(p)}")
    if messages:
        code = "PL-CONFIG-SCHEMA" if codes == {"PL-CONFIG-SCHEMA"} else "PL-CONFIG-INVALID"
        raise ConfigError(code, f"export refused, no file written: {' | '.join(messages)}", all_violations)
