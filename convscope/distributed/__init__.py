"""convscope on ``torch.distributed``: the launch environment (torchrun), a scoped process group, exact
collectives and deterministic shards, shared by distributed training and dataset-wide inspection."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and the API docs; at run time each name is imported on first use
    from .collectives import (all_any, all_max, all_min, all_sum, barrier, broadcast_text, gather_rows,
                                  is_comm_failure, lost_peer)
    from .env import (DEFAULT_TIMEOUT_S, DistributedError, World, current_world, is_main_process, launch_world,
                          process_group)
    from .shard import batch_shard

__all__ = ["DEFAULT_TIMEOUT_S", "DistributedError", "World", "all_any", "all_max", "all_min", "all_sum", "barrier",
           "broadcast_text", "is_comm_failure", "lost_peer",
           "batch_shard", "current_world", "gather_rows", "is_main_process", "launch_world", "process_group"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "all_any": ".collectives", "all_max": ".collectives", "all_min": ".collectives", "all_sum": ".collectives",
    "barrier": ".collectives", "broadcast_text": ".collectives", "gather_rows": ".collectives",
    "is_comm_failure": ".collectives", "lost_peer": ".collectives", "DEFAULT_TIMEOUT_S": ".env",
    "DistributedError": ".env", "World": ".env", "current_world": ".env", "is_main_process": ".env",
    "launch_world": ".env", "process_group": ".env", "batch_shard": ".shard"
})
