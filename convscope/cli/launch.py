"""``--nproc N`` for a command: rerun the same command line on N local processes under torchrun.

Two calls wire it into a command (``train`` in cli/train_cmd.py)::

    add_nproc_arg(p)                                   # in register()
    if (status := relaunch(args)) is not None: return status   # first line of the command
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..distributed.launch import launch, strip_option
from ..errors import ConfigError
from ._types import count


def add_nproc_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nproc", type=count(1), default=1, metavar="N",
                   help="run on N processes of this machine (DistributedDataParallel through torchrun; "
                        "for several machines start `torchrun ... -m convscope` yourself)")


def check_nproc(nproc: int) -> None:
    """At most one process per CUDA device, or per CPU core without one: more only oversubscribe the machine
    (``--nproc 1000`` would start a thousand workers that each hold a copy of the model)."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus:
        if nproc > gpus:
            raise ConfigError(f"--nproc {nproc}: this machine has {gpus} CUDA device(s); give --nproc {gpus} or "
                              "fewer (one process per device)")
        return
    cpus = os.cpu_count() or 1
    if nproc > cpus:
        raise ConfigError(f"--nproc {nproc}: this machine has {cpus} CPU core(s) and no CUDA device; give --nproc "
                          f"{cpus} or fewer (more processes only contend for the same cores)")


def relaunch(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int | None:
    """With ``--nproc N`` (N > 1): run this command line (``argv``, default ``sys.argv[1:]``) without ``--nproc``
    under torchrun and return the job's exit status; otherwise None (run here, as one process or one rank)."""
    if getattr(args, "nproc", 0) <= 1:
        return None
    check_nproc(args.nproc)
    argv = list(sys.argv[1:] if argv is None else argv)
    if getattr(args, "command", None) not in argv:
        raise ConfigError(f"--nproc: cannot find the command line of {args.command!r} to rerun "
                          f"(got {argv}); pass it as argv, or start `torchrun ... -m convscope` yourself")
    status = launch(args.nproc, strip_option(argv, "--nproc"))
    if status != 0:
        print(f"convscope: error: the {args.nproc}-process job failed (exit status {status}); the first failing "
              "rank's error is above. A checkpointed run continues with `convscope train --resume RUN_DIR` "
              "(with any --nproc)", file=sys.stderr)
    return status
