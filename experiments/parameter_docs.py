"""Generate docs/model.md's parameter, cohort-preset and derived-value tables from the code.

``python -m experiments.parameter_docs [--docs docs/model.md]`` rewrites
the tables between their marker comments; the tables themselves are
``experiments.validation.parameter_docs``'s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.validation.parameter_docs import DOCS_PATH, write_tables


def main(argv: list[str] | None = None) -> int:
    """The command: rewrite the tables, print the path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=DOCS_PATH, help="document to update (default: docs/model.md)")
    args = parser.parse_args(argv)
    print(f"updated {write_tables(args.docs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
