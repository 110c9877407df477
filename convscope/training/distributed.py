"""Data-parallel training pieces on ``torch.distributed``: DistributedDataParallel (gloo on CPU, NCCL on GPU),
each rank's share of the global batch, and evaluation/metrics reduced across ranks.

The rules that keep a run defined by its config alone, whatever the world size W:

- The global batch is ``batch_size`` (the config's); each rank trains on ``batch_size / W`` examples of it
  (W must divide it). The per-epoch order is the one-process order; global batch b is
  ``order[b*B:(b+1)*B]`` and rank r takes its r-th contiguous slice. So the examples, their order and the
  checkpointed data position (epoch, global batch) do not depend on W, and a run checkpointed with N
  processes resumes with M.
- Learning rate: unchanged when W changes — the global batch, hence the mean gradient DDP averages, is the
  same. (If you instead keep the per-process batch and let the global batch grow with W, scale the learning
  rate linearly with the global batch: lr = lr_ref * B / B_ref, Goyal et al. 2017, with warm-up.)
- BatchNorm normalises with the statistics of each rank's B/W examples unless ``sync_bn`` (SyncBatchNorm:
  statistics of the whole global batch, as in one process, at one extra all-reduce per BN layer).
- Evaluation: each rank predicts whole batches of its shard; the logits are gathered in dataset order and
  scored once, so the figures equal one process's bit for bit.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.dataset import ImageDataset
from ..data.normalize import Normalization
from ..distributed import World, all_sum, batch_shard, gather_rows
from ..errors import ConfigError
from .evaluate import EVAL_BATCH, EvalResult, predict_logits, result_from_logits


def check_processes(engine: str, processes: int) -> None:
    """What a training run on ``processes`` processes refuses, checked once: by :func:`~.setup.prepare` on every
    rank, and by ``convscope train --nproc N`` before any process starts (one message, no torchrun traceback)."""
    if processes > 1 and engine != "torch":
        raise ConfigError(f"engine {engine!r}: several processes ({processes}) need the torch engine; give "
                          "--engine torch, or drop --nproc to train with the numpy engine in one process")


def rank_slice(global_batch: int, world: World) -> slice:
    """Rank ``world.rank``'s positions within a global batch of ``global_batch`` examples."""
    if global_batch % world.size:
        raise ConfigError(f"batch_size {global_batch}: must be divisible by the number of processes ({world.size}), "
                          f"e.g. {global_batch - global_batch % world.size or world.size}; the global batch is "
                          "the config's, each process takes batch_size / processes of it")
    per = global_batch // world.size
    return slice(world.rank * per, (world.rank + 1) * per)


def wrap_ddp(model: nn.Module, world: World, sync_bn: bool = False) -> nn.Module:
    """``model`` as a DistributedDataParallel module (unchanged in a one-process world). The model must already
    sit on its device; ``sync_bn`` converts BatchNorm layers to SyncBatchNorm first (in place)."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    # buffers (BN running statistics) are rank 0's, sent to the others before each forward (DDP's default)
    return DistributedDataParallel(model, device_ids=ids)


def reduce_sums(values: list[float | int], world: World) -> list[float]:
    """Elementwise sums over ranks of per-rank totals (loss x examples, correct, seen), as float64."""
    return all_sum(torch.tensor(values, dtype=torch.float64), world).tolist()


@torch.no_grad()
def sharded_evaluate(model: nn.Module, dataset: ImageDataset, norm: Normalization, world: World,
                     batch_size: int = EVAL_BATCH, bf16: bool = False, channels_last: bool = False,
                     tta: bool = False) -> EvalResult:
    """:func:`~convscope.training.evaluate.evaluate` with each rank predicting its batch-aligned shard;
    every rank returns the same result, equal to one process's."""
    if not world.distributed:
        from .evaluate import evaluate

        return evaluate(model, dataset, norm, batch_size, bf16, channels_last, tta)
    start, stop = batch_shard(len(dataset), batch_size, world.rank, world.size)
    k = len(dataset.classes)
    logits = predict_logits(model, dataset.images[start:stop], norm, batch_size, bf16, channels_last,
                            tta and dataset.hflip_ok)
    logits = logits.reshape(-1, k).float().cpu()            # (n_r, k); an empty shard gives (0, k)
    logits = gather_rows(logits, world)                     # (N, k) in dataset order
    return result_from_logits(logits, dataset.labels, k)
