"""Exact collectives on tensors (no pickling): a variable-length gather and sum/min/max/or reductions.

Every function is the identity in a one-process world, so library code calls them unconditionally.
Integers and booleans are reduced as int64, so sums of counts are exact on every backend.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from .env import DistributedError, World


def _check(world: World) -> None:
    if world.distributed and not (dist.is_available() and dist.is_initialized()):
        raise DistributedError(f"world size {world.size} but no process group is open (use process_group())")


def _reduce(t: torch.Tensor, world: World, op) -> torch.Tensor:
    if not world.distributed:
        return t
    _check(world)
    buf = t.to(world.device, torch.float64 if t.is_floating_point() else torch.int64).contiguous()
    try:
        dist.all_reduce(buf, op=op)
    except RuntimeError as e:
        raise lost_peer(world, e) from e
    return buf.to(t.device, t.dtype)


def all_sum(t: torch.Tensor, world: World) -> torch.Tensor:
    """Elementwise sum over ranks (integer counts stay exact: reduced as int64)."""
    return _reduce(t, world, dist.ReduceOp.SUM)


def all_min(t: torch.Tensor, world: World) -> torch.Tensor:
    return _reduce(t, world, dist.ReduceOp.MIN)


def all_max(t: torch.Tensor, world: World) -> torch.Tensor:
    return _reduce(t, world, dist.ReduceOp.MAX)


def all_any(t: torch.Tensor, world: World) -> torch.Tensor:
    """Elementwise logical OR of a boolean tensor over ranks."""
    return _reduce(t.to(torch.int64), world, dist.ReduceOp.MAX).bool()


def gather_rows(t: torch.Tensor, world: World) -> torch.Tensor:
    """Concatenate every rank's ``t`` along dim 0, in rank order; the ranks' lengths may differ.

    ``t``: (n_r, *rest) with the same ``rest`` and dtype on every rank -> (sum n_r, *rest) on every rank."""
    if not world.distributed:
        return t
    _check(world)
    try:
        n = torch.tensor([t.shape[0]], dtype=torch.int64, device=world.device)
        sizes = [torch.zeros_like(n) for _ in range(world.size)]
        dist.all_gather(sizes, n)
        lengths = [int(s) for s in sizes]
        longest = max(lengths)
        padded = torch.zeros((longest, *t.shape[1:]), dtype=t.dtype, device=world.device)
        padded[:t.shape[0]] = t
        parts = [torch.empty_like(padded) for _ in range(world.size)]
        dist.all_gather(parts, padded)
    except RuntimeError as e:
        raise lost_peer(world, e) from e
    return torch.cat([p[:m] for p, m in zip(parts, lengths)]).to(t.device)


def lost_peer(world: World, err: BaseException) -> DistributedError:
    """The error every surviving rank raises when a collective fails (a peer died or timed out)."""
    return DistributedError(f"rank {world.rank}/{world.size}: a collective failed, most likely another rank "
                            f"died or stopped answering ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                            "the job stops here. Check the other ranks' output, then run again "
                            "(training: add --resume)")


def barrier(world: World) -> None:
    if not world.distributed:
        return
    _check(world)
    try:
        dist.barrier()
    except RuntimeError as e:
        raise lost_peer(world, e) from e


def broadcast_text(text: str, world: World) -> str:
    """Rank 0's ``text`` on every rank (UTF-8 bytes in a uint8 tensor; no pickling)."""
    if not world.distributed:
        return text
    _check(world)
    try:
        data = torch.tensor(list(text.encode()) if world.is_main else [], dtype=torch.uint8)
        n = torch.tensor([len(data)], dtype=torch.int64, device=world.device)
        dist.broadcast(n, src=0)
        buf = torch.zeros(int(n), dtype=torch.uint8, device=world.device)
        if world.is_main:
            buf.copy_(data)
        dist.broadcast(buf, src=0)
    except RuntimeError as e:
        raise lost_peer(world, e) from e
    return bytes(buf.cpu().tolist()).decode()


def is_comm_failure(err: BaseException) -> bool:
    """Whether an error raised inside a collective (e.g. DDP's gradient all-reduce) means a lost peer."""
    text = str(err).lower()
    return any(w in text for w in ("gloo", "nccl", "connection", "timed out", "timeout", "peer", "socket"))
