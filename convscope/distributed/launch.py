"""Start a convscope command on N processes of this machine through PyTorch's own launcher, ``torchrun``
(``python -m torch.distributed.run``): ``convscope train --nproc 2 ...`` is exactly
``torchrun --standalone --nproc_per_node 2 -m convscope train ...``.

``--standalone`` gives a private rendezvous on localhost with a free port, so two jobs never collide. When any
rank exits with an error or is killed, torchrun's agent stops the others and exits non-zero within seconds.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

from ..errors import ConfigError


def strip_option(argv: Sequence[str], flag: str) -> list[str]:
    """``argv`` without ``flag VALUE`` / ``flag=VALUE`` (the launcher's own option, not the workers')."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == flag:
            skip = True
        elif not a.startswith(flag + "="):
            out.append(a)
    return out


def torchrun_command(nproc: int, args: Sequence[str], module: str = "convscope") -> list[str]:
    """The command that runs ``python -m module *args`` on ``nproc`` local processes under torchrun."""
    if nproc < 1:
        raise ConfigError(f"--nproc {nproc}: must be at least 1")
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "-m", module, *args]


def launch(nproc: int, args: Sequence[str], module: str = "convscope") -> int:
    """Run ``python -m module *args`` on ``nproc`` processes of this machine and wait; the job's exit status.
    Each worker gets OMP_NUM_THREADS=1 unless set (torchrun's default); ``--threads`` overrides it."""
    from .env import launch_world      # here, not at the top: env imports torch, and the CLI's parser needs none

    if launch_world().distributed:
        raise ConfigError("--nproc: this process already runs under torchrun (WORLD_SIZE > 1); "
                          "drop --nproc or do not wrap the command in torchrun")
    return subprocess.run(torchrun_command(nproc, args, module), check=False).returncode
