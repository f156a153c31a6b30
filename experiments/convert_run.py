"""``python -m experiments.convert_run <dir> [--yes]``: convert a run folder written before the trust boundary.

Such a folder keeps its ``VecNormalize`` statistics as pickles and has no
manifest of hashes in ``run.json``; ``run:<dir>``, ``resume=<dir>`` and
``finetune_from=<dir>`` refuse it (``PL-RUN-LEGACY``). Converting reads the
pickles (which runs any code they hold), so it asks first: only convert a
folder that is yours, or whose author you trust. It then writes each
statistics file as JSON, records the SHA-256 of every file a load reads in
``run.json`` and deletes the pickled statistics (``agents.run_files.convert_legacy``).
Replay buffers (DQN, SAC) stay pickles: a resume that needs one also asks for
``trust_run_folder=true``. docs/reliability.md, "Trust boundary".

Exit codes: 0 converted (or nothing to do), 1 declined, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from agents import run_files, run_manifest
from experiments.common.run_folder import report_error
from simenv.errors import PainloopError

EXIT_DECLINED = 1
EXIT_BAD_INPUT = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.convert_run", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a training run folder written before the trust boundary")
    parser.add_argument("--yes", action="store_true", help="the folder is mine: convert without asking")
    args = parser.parse_args(argv)
    run = args.run_dir
    try:
        if not (run / run_files.TRAIN_CONFIG).is_file():
            raise PainloopError("PL-RUN-FOLDER", f"'{run}' is not a training run folder: train_config.json is missing.")
        if run_manifest.manifest_files(run) is not None and not run_files.legacy_statistics(run):
            print(f"'{run}' already has a manifest and no pickled statistics; nothing to do.")
            return 0
        legacy = run_files.legacy_statistics(run)
        print(f"'{run}' holds {len(legacy)} pickled statistics file(s): " + ", ".join(p.name for p in legacy))
        print("Converting unpickles them, which runs any code they hold. Convert only a folder that is yours "
              "(you trained it, or you trust who did).")
        if not args.yes:
            answer = input("Is this folder yours? Type 'yes' to convert: ").strip().lower()
            if answer != "yes":
                print("not converted", file=sys.stderr)
                return EXIT_DECLINED
        written = run_files.convert_legacy(run)
    except PainloopError as exc:
        report_error(exc)
        return EXIT_BAD_INPUT
    print(f"converted '{run}': wrote {[p.name for p in written]}, recorded the manifest in run.json, "
          "deleted the pickled statistics.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
