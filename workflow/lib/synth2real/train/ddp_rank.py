"""``torchrun`` entry point of one DDP rank: ``python -m synth2real.train.ddp_rank JOB``.

A module of its own so that the rank imports :mod:`synth2real.train.ddp` under its real name
(running that module as ``__main__`` would load it twice).
"""

import sys

from synth2real.train.ddp import distributed_main

if __name__ == "__main__":
    distributed_main(sys.argv[1])
