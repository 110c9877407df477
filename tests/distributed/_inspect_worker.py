"""One rank of the distributed-inspection test (started by torchrun from test_inspect_distributed.py).

argv: WEIGHTS OUT_DIR LIMIT BATCH. Builds the seeded width-8 `fast` model, loads WEIGHTS, runs the three sharded tools
on Fashion-MNIST test (first LIMIT images, 0 = all) and writes: every rank its shard bounds, rank 0 the results.
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from convscope.data import load
from convscope.data.normalize import Normalization
from convscope.distributed import batch_shard, current_world, is_main_process, process_group
from convscope.inspect.distributed import sharded_activation_sparsity, sharded_edge_experiment, sharded_topk
from convscope.models import create_model


def main() -> None:
    weights, out, limit, batch = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    model = create_model("fast", 1, 28, 10, width=8)
    model.load_state_dict(load_file(weights))
    ds = load("fashion-mnist", "test")
    if limit:
        ds = ds.subset(torch.arange(limit))
    norm = Normalization((0.286,), (0.353,))
    with process_group() as world:    # one group for the three tools (each reuses the open group)
        top = sharded_topk(model, ds, ["relu2", "relu3", "fc"], 5, norm, batch_size=batch)
        spars = sharded_activation_sparsity(model, ds, norm, batch_size=batch)
        edges = sharded_edge_experiment(ds.images, "sobel-x", keep=4, batch_size=1500)
        (out / f"rank{world.rank}.json").write_text(json.dumps(
            {"rank": world.rank, "size": current_world().size, "shard": batch_shard(len(ds), batch, world.rank,
                                                                                    world.size)}))
    if is_main_process():
        (out / "result.json").write_text(json.dumps({
            "topk": {n: [[r.to_dict() for r in ch] for ch in chans] for n, chans in top.items()},
            "sparsity": [s.to_dict() for s in spars],
            "edges": {"nonzero_input": edges.nonzero_input.tolist(), "nonzero_before": edges.nonzero_before.tolist(),
                      "nonzero_after": edges.nonzero_after.tolist(), "outputs": edges.outputs.tolist(),
                      "pixels": edges.pixels}}))


if __name__ == "__main__":
    main()
