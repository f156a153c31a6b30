"""Training workflow, without Hydra: plan, run folder and status, checkpoints and resume, the loop, validation.

From Python (docs/training.md, "From Python")::

    from experiments.training.defaults import default_config
    from experiments.training.runner import train

    result = train(default_config("ppo"), run_dir="outputs/nb/run1")
    result = train(run_dir="outputs/nb/run1", resume=True)

``python -m experiments.train`` is the Hydra layer over ``runner.run``.
What belongs where: ``agents/`` keeps what any user of a trained policy
needs without this workflow (``rl_policy`` loads a run folder as a policy;
``run_files``, ``run_statistics``, ``run_manifest`` read its files safely;
``sb3_vec_env`` adapts the batched env to SB3); the workflow itself (run
folders, status, heartbeat, signals, checkpoints, the training loop and its
callback) stays here, since it only serves training and its command line.
Nothing is re-exported here, so importing one module does not load the rest.
"""
