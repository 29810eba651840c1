"""Reading Snakemake's output in tests."""

import re


def job_counts(dry_run_output):
    """The 'Job stats' table of a dry run as {rule: count}."""
    counts = {}
    for line in dry_run_output.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts
