"""Where am I in a distributed launch? ``torchrun`` (``torch.distributed.run``) tells every worker through the
environment: ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``. This module reads that
contract, opens a process group for the length of a ``with`` block, and says which process writes files.

Nothing here is a test hook: a plain ``python -m convscope ...`` has no ``WORLD_SIZE`` (or ``WORLD_SIZE=1``) and
runs as one process; the same command under ``torchrun --nproc_per_node N`` runs as N cooperating ranks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from ..errors import ConfigError, ConvscopeError

DEFAULT_TIMEOUT_S = 60.0   # a rank that stops answering fails every other rank's collective after this long


class DistributedError(ConvscopeError, RuntimeError):
    """A distributed job cannot start or lost one of its processes."""


@dataclass(frozen=True)
class World:
    """This process's place in the job; ``World(0, 1)`` is the ordinary single-process case."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None     # "gloo" or "nccl" while a group is open, None for one process

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def device(self) -> torch.device:
        """Where collective buffers live: the rank's GPU under NCCL, else the CPU."""
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")


def _env_int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment {key}={raw!r}: expected an integer (set by torchrun)") from None


def launch_world(env: Mapping[str, str] | None = None) -> World:
    """The world torchrun announced in ``env`` (default ``os.environ``); ``World(0, 1)`` outside a launch."""
    env = os.environ if env is None else env
    size = _env_int(env, "WORLD_SIZE", 1)
    rank = _env_int(env, "RANK", 0)
    local = _env_int(env, "LOCAL_RANK", rank)
    if size < 1 or not 0 <= rank < size:
        raise ConfigError(f"environment WORLD_SIZE={size}, RANK={rank}: need WORLD_SIZE >= 1 and "
                          "0 <= RANK < WORLD_SIZE (start the job with torchrun)")
    return World(rank, size, local)


def current_world() -> World:
    """The open process group's world, else the launch environment's (without opening anything)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), launch_world().local_rank, dist.get_backend())
    return launch_world()


def is_main_process() -> bool:
    """True in rank 0 of a launch and in every single-process run: the process that prints and writes files."""
    return current_world().is_main


def default_backend() -> str:
    return "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"


@contextmanager
def process_group(backend: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[World]:
    """Yield this process's :class:`World`, with a process group open when the launch has several ranks.

    An already open group is used as is (and left open); otherwise one is opened from torchrun's environment
    (``init_method="env://"``) and destroyed on exit, also on errors. One process: nothing is opened.
    ``timeout_s`` bounds how long a collective waits for a rank that died (gloo), so a job never hangs."""
    if dist.is_available() and dist.is_initialized():
        yield current_world()
        return
    world = launch_world()
    if not world.distributed:
        yield world
        return
    if not dist.is_available():
        raise DistributedError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    backend = backend or default_backend()
    if backend == "nccl":
        torch.cuda.set_device(world.local_rank)
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as e:
        raise DistributedError(f"rank {world.rank}/{world.size}: cannot join the process group ({backend}, "
                               f"MASTER_ADDR={os.environ.get('MASTER_ADDR')}, MASTER_PORT="
                               f"{os.environ.get('MASTER_PORT')}): {e}") from e
    try:
        yield World(world.rank, world.size, world.local_rank, backend)
    finally:
        dist.destroy_process_group()
