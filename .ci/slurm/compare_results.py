"""Compare two runs' result tables (SLURM vs local): same rows, same numbers.

Every job runs single-threaded on the CPU with seeds derived from names, so the two runs must
agree exactly; any difference is printed and fails the stage.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

TABLES = ("summary.csv", "distribution.csv", "tables/spectra.csv")


def main(a: str, b: str) -> int:
    failed = False
    for name in TABLES:
        left, right = pd.read_csv(Path(a) / name), pd.read_csv(Path(b) / name)
        same = left.shape == right.shape and left.equals(right)
        print(f"{name}: {len(left)} rows, {'identical' if same else 'DIFFERENT'}")
        if not same:
            failed = True
            print("slurm:\n" + left.to_string() + "\nlocal:\n" + right.to_string())
    print(pd.read_csv(Path(a) / "summary.csv").to_string(index=False))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
