"""Helpers for the multi-process tests: real ``torchrun`` launches of small worker scripts on CPU (gloo)."""

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def torchrun(nproc: int, script: str, *args, timeout: float = 240, env: dict | None = None
             ) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --standalone`` (a free port on localhost) with one thread per rank."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           str(script), *map(str, args)]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, env=full_env)
