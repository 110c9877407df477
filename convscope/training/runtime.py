"""The machine side of a run: which device, whether bf16 is native, torch's threads and determinism for the
duration of the run, and Ctrl-C turned into a flag checked between steps."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import torch

from .._cpus import cpu_limit
from ..models.forward import check_device
from ..runs.callbacks import Callback
from .config import TrainConfig
from .cpu_share import CpuShare, follows_load
from .threads import cpu_threads


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return check_device(name, "device", "auto, cpu, cuda or cuda:N")     # computes here: not meta, no absent GPU


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast runs natively (AVX-512 BF16 / AMX on CPU; Ampere or newer on CUDA)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@contextlib.contextmanager
def torch_settings(cfg: TrainConfig) -> Iterator[list[Callback]]:
    """Apply threads and determinism for the run, and restore the caller's settings afterwards. Yields the
    callbacks a training loop adds: a :class:`~convscope.training.cpu_share.CpuShare` when the thread count
    follows the machine's load (no ``--threads``, no OMP_NUM_THREADS, not ``--deterministic``)."""
    det = torch.are_deterministic_algorithms_enabled()
    # --deterministic and the numpy engine: every CPU the run may use, a count that does not depend on the load
    whole = cfg.runtime.deterministic or cfg.runtime.engine != "torch"
    with cpu_threads(cfg.runtime.threads, whole=whole):
        try:
            if cfg.runtime.deterministic:
                torch.use_deterministic_algorithms(True)
            yield [CpuShare(cpu_limit())] if follows_load(cfg) else []
        finally:
            torch.use_deterministic_algorithms(det)


@contextlib.contextmanager
def stop_signals(term: bool = True) -> Iterator[list[int]]:
    """Turn Ctrl-C (SIGINT) and, with ``term``, SIGTERM (what ``kill``, systemd and batch schedulers send before
    SIGKILL) into a flag checked between steps, so a step is never cut in half and the run saves before it stops.
    The flag holds the signal's number (0: none). A second signal stops at once. ``term`` is off under torchrun:
    it sends SIGTERM to every worker when one fails, and a worker that went on to the step's end would wait on a
    peer that is gone."""
    flag = [0]
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag[0]:  # a second signal: stop at once
            raise KeyboardInterrupt
        flag[0] = signum

    signals = [signal.SIGINT, *([signal.SIGTERM] if term else [])]
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield flag
    finally:
        for sig, handler_before in previous.items():
            signal.signal(sig, handler_before)
