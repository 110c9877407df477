"""Deterministic shards: which examples each rank handles, defined by the data and the batch size alone.

Inspection shards whole batches (``batch_shard``): rank r gets a contiguous run of the *same* batches a single
process would form, so every example passes through the model in an identical batch and its activations are
bit-identical to the one-process run whatever kernel the library picks for that batch shape.
"""

from __future__ import annotations

from ..errors import ConfigError


def batch_shard(n: int, batch_size: int, rank: int, world_size: int) -> tuple[int, int]:
    """Examples ``[start, stop)`` of rank ``rank``: batches ``[r*B/W, (r+1)*B/W)`` of the B = ceil(n/batch_size)
    batches, so ``start`` is a multiple of ``batch_size`` and the shards tile ``[0, n)`` in rank order.

    A rank may get nothing (more ranks than batches): ``start == stop``."""
    if batch_size < 1:
        raise ConfigError(f"batch_size {batch_size}: must be at least 1")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} of world size {world_size}: need 0 <= rank < world_size")
    batches = -(-n // batch_size)
    first, last = rank * batches // world_size, (rank + 1) * batches // world_size
    return min(first * batch_size, n), min(last * batch_size, n)
