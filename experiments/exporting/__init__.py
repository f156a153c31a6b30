"""Export workflow, as plain Python (no Hydra): a controller to per-patient device configs or ONNX.

It owns what the export command does around the device-side pieces of
``agents/`` (config format and validation, encodings, distillation, golden
traces, the ONNX graph, none of which import ``experiments``): reading the
source's controller entry and the cohort, checking every input before any
file is written (``plan``), building and validating one config per patient
(``configs``), the fidelity report on held-out days in a frame, long-term by
default (``fidelity``), and the run folder with its files, status and exit
codes (``run``).
``python -m experiments.export`` is the Hydra entry point over
``run.run_export``; from Python::

    from experiments.exporting.run import export_controller

    export_controller("threshold", "summit_rcs", "outputs/export/thr", cohort="test", n_patients=5)

docs/export.md is the user's guide.
"""
