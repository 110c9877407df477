"""One rank of the distributed-training tests (started by torchrun). argv: MODE RUN_DIR CONFIG_JSON [KILL_STEP].

train: convscope.train(CONFIG, out=RUN_DIR); with KILL_STEP, rank 1 SIGKILLs itself after that optimizer step
       (a test-only kill point, installed as a callback). resume: convscope.resume(RUN_DIR).
"""

import json
import os
import signal
import sys

import convscope
from convscope.runs import Callback


class KillRank1(Callback):
    def __init__(self, step: int) -> None:
        self.at = step

    def on_step_end(self, loop, result) -> None:
        if loop.world.rank == 1 and loop.step == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    mode, out = sys.argv[1], sys.argv[2]
    callbacks = [KillRank1(int(sys.argv[4]))] if len(sys.argv) > 4 else []
    if mode == "train":
        convscope.train(json.loads(sys.argv[3]), out=out, progress=False, callbacks=callbacks)
    else:
        convscope.resume(out, progress=False)


if __name__ == "__main__":
    main()
