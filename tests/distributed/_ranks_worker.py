"""A small rank program for the launcher and failure tests. argv: MODE OUT_DIR.

kill: rank 1 SIGKILLs itself once the group is open; rank 0 then waits in a collective and must fail with
      convscope's DistributedError (written to rank0.json) instead of hanging.
evaluate: sharded evaluation of a seeded width-4 `fast` model on the digits test split (rank 0 writes it).
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

import torch

from convscope.distributed import DistributedError, all_sum, barrier, process_group


def main() -> None:
    mode, out = sys.argv[1], Path(sys.argv[2])
    with process_group(timeout_s=30) as world:
        if mode == "kill":
            barrier(world)
            if world.rank == 1:
                os.kill(os.getpid(), signal.SIGKILL)
            t = time.monotonic()
            try:
                for _ in range(100):
                    all_sum(torch.ones(3), world)
                    time.sleep(0.05)
                msg = "no error"
            except DistributedError as e:
                msg = str(e)
            (out / f"rank{world.rank}.json").write_text(json.dumps({"error": msg, "seconds": time.monotonic() - t}))
        elif mode == "evaluate":
            from convscope.data import load
            from convscope.data.normalize import Normalization
            from convscope.models import create_model
            from convscope.training.distributed import sharded_evaluate

            torch.manual_seed(0)
            model = create_model("fast", 1, 28, 10, width=4)
            res = sharded_evaluate(model, load("digits", "test"), Normalization((0.13,), (0.31,)), world, 300)
            if world.is_main:
                (out / "eval.json").write_text(json.dumps(
                    {"accuracy": res.accuracy, "loss": res.loss, "per_class": res.per_class, "n": res.n,
                     "confusion": res.confusion.tolist()}))


if __name__ == "__main__":
    main()
