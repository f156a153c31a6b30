"""Studies: one research question each, answered with the evaluation and training engines, Hydra-free.

``finetune`` (what fine-tuning a cohort policy on one patient gains; the
command ``python -m experiments.finetune_report``) and ``biomarker_value``
(what the biomarker adds beyond a matched duty; ``python -m
experiments.biomarker_value``).
"""
