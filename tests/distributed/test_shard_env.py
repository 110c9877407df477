"""Deterministic shards and the torchrun environment contract (no processes needed)."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from convscope.distributed import World, batch_shard, launch_world
from convscope.errors import ConfigError
from convscope.training.distributed import rank_slice


@given(n=st.integers(0, 5000), batch=st.integers(1, 700), world=st.integers(1, 9))
def test_batch_shards_tile_the_dataset_on_batch_boundaries(n, batch, world):
    shards = [batch_shard(n, batch, r, world) for r in range(world)]
    assert shards[0][0] == 0 and shards[-1][1] == n
    for (_, b), (c, _) in itertools.pairwise(shards):
        assert b == c                                   # contiguous, in rank order, no overlap
    for a, b in shards:
        assert a <= b and a % batch == 0                # starts on a single-process batch boundary
        assert b == n or b % batch == 0
    sizes = [-(-(b - a) // batch) for a, b in shards]   # batches per rank differ by at most one
    assert max(sizes) - min(sizes) <= 1


def test_batch_shard_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="rank 2 of world size 2"):
        batch_shard(10, 5, 2, 2)
    with pytest.raises(ConfigError, match="batch_size 0"):
        batch_shard(10, 0, 0, 1)


def test_launch_world_reads_torchrun_environment():
    assert launch_world({}) == World(0, 1, 0)
    w = launch_world({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (w.rank, w.size, w.local_rank, w.is_main, w.distributed) == (3, 4, 1, False, True)
    with pytest.raises(ConfigError, match="RANK=4"):
        launch_world({"WORLD_SIZE": "4", "RANK": "4"})
    with pytest.raises(ConfigError, match="WORLD_SIZE='two'"):
        launch_world({"WORLD_SIZE": "two"})


def test_global_batch_split_into_equal_rank_parts():
    assert [rank_slice(64, World(r, 4)) for r in range(4)] == [slice(0, 16), slice(16, 32), slice(32, 48),
                                                                slice(48, 64)]
    assert rank_slice(63, World(0, 1)) == slice(0, 63)
    with pytest.raises(ConfigError, match=r"batch_size 63: must be divisible by the number of processes \(2\)"):
        rank_slice(63, World(1, 2))
