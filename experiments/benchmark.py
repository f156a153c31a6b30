"""Throughput benchmark: ``python -m experiments.benchmark --section simulator``.

``--section`` picks what is measured; each section lives in its own module
of ``experiments.benchmarks``:

- ``simulator`` (``benchmarks.simulator``): steps/s of the single env
  through ``gymnasium.make``, patient-steps/s of ``simenv.BatchedCore`` at
  N = 1, 64, 1024 and 4096, NumPy drawing the same noise alone, the numba
  kernel's first step, all beside CartPole-v1;
- ``evaluation`` (``benchmarks.evaluation``): wall time of
  ``agents.evaluation.evaluate`` on the 7 baselines x 100 test patients x 28
  days, in one process and in one per core;
- ``training`` (``benchmarks.training``): PPO's rollout collection and
  end-to-end ``learn`` on the SB3 adapter beside CartPole, one torch thread
  (``--torch-threads``);
- ``peers`` (``benchmarks.peers``): simglucose's step in a throwaway venv
  beside painloop's single env (skipped with the reason when simglucose
  cannot be installed);
- ``learning`` (``benchmarks.learning``): trains each agent of ``--agents``
  for each of ``--seeds`` and checks the RL-training issue's goal on the
  test cohort; it trains for hours and runs only when asked for by name.

``--section all`` (the default) runs simulator, evaluation, training and
peers into one JSON file. Each figure is the median, min and max over
``--repeats`` repeats; the console gets a table, ``--out`` (default
``benchmark_results/benchmark-<timestamp>.json``) the figures, the machine,
package versions, the git revision and the floors and targets marked met or
not (``benchmarks.run``). Heavy imports (NumPy, gymnasium, simenv) happen
only after the options are read, so ``OPENBLAS_NUM_THREADS`` (default 1,
``--blas-threads``) is set before NumPy loads. docs/performance.md has the
figures.
"""

from __future__ import annotations

import sys

from experiments.benchmarks.run import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
