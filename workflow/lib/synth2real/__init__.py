"""synth2real: measure whether text-to-image models make useful training data.

The library holds every computation of the workflow; the Snakemake scripts only glue
inputs and outputs to it, so each piece is importable and unit-tested without Snakemake.
Heavy modules (torch) are imported lazily so that light scripts start fast.
"""

from __future__ import annotations

from typing import Any

__all__ = ["__version__", "compute_prdc"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # ``synth2real.compute_prdc`` is a public entry point other tools call by that name.
    if name == "compute_prdc":
        from synth2real.metrics.prdc import compute_prdc

        return compute_prdc
    raise AttributeError(f"module 'synth2real' has no attribute {name!r}")
