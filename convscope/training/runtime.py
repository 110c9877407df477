"""The machine side of a run: which device, whether bf16 is native, torch's threads and determinism for the
duration of the run (Ctrl-C turned into a flag checked between steps: convscope/_signals.py)."""

from __future__ import annotations

import contextlib
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
    # set and restored only when it changes: the call imports torch's compiler config (about 800 modules, 0.9 s)
    switch = bool(cfg.runtime.deterministic) and not det
    with cpu_threads(cfg.runtime.threads, whole=whole):
        try:
            if switch:
                torch.use_deterministic_algorithms(True)
            yield [CpuShare(cpu_limit())] if follows_load(cfg) else []
        finally:
            if switch:
                torch.use_deterministic_algorithms(det)
