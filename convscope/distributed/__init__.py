"""convscope on ``torch.distributed``: the launch environment (torchrun), a scoped process group, exact
collectives and deterministic shards, shared by distributed training and dataset-wide inspection."""

from .collectives import (all_any, all_max, all_min, all_sum, barrier, broadcast_text, gather_rows, is_comm_failure,
                          lost_peer)
from .env import DEFAULT_TIMEOUT_S, DistributedError, World, current_world, is_main_process, launch_world, process_group
from .shard import batch_shard

__all__ = ["DEFAULT_TIMEOUT_S", "DistributedError", "World", "all_any", "all_max", "all_min", "all_sum", "barrier",
           "broadcast_text", "is_comm_failure", "lost_peer",
           "batch_shard", "current_world", "gather_rows", "is_main_process", "launch_world", "process_group"]
