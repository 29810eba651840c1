"""Check that every rule of one dry run also appears in another (``make rehearsal``, step 7).

Reads the "Job stats" tables of two ``snakemake -n`` outputs: the paper config's, and the
rehearsal's with ``--forceall`` (every job of its DAG; the rehearsal's own dry run having nothing
left to do shows they all ran). Exit 1 naming the rules the rehearsal lacks.

    python tests/rehearsal_rules.py PAPER_DRYRUN.txt REHEARSAL_DRYRUN.txt
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROW = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s+(\d+)$")


def job_rules(text: str) -> set[str]:
    """Rule names in the job stats tables of a dry run's output."""
    rules, inside = set(), False
    for line in text.splitlines():
        line = line.strip()
        if line == "Job stats:":
            inside = True
        elif inside and (m := ROW.match(line)):
            if m[1] != "total":
                rules.add(m[1])
            else:
                inside = False
    return rules


def main(argv: list[str]) -> int:
    paper, rehearsal = (job_rules(Path(p).read_text()) for p in argv)
    if not paper or not rehearsal:
        print("no job stats found in a dry run's output", file=sys.stderr)
        return 1
    missing = sorted(paper - rehearsal)
    print(f"paper dry run: {len(paper)} rules; rehearsal: {len(rehearsal)}; missing: {missing}")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
