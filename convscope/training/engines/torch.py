"""The PyTorch engine: autocast (bf16 where native), gradient clipping, and an airbench-style weight average
(:class:`~convscope.training.ema.EMA`) that is evaluated and exported in place of the raw weights."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...data.dataset import ImageDataset
from ...data.normalize import Normalization
from ...distributed import World, all_min
from ...errors import ConfigError
from ...models import upgrade_state_dict
from ..config import TrainConfig
from ..ema import EMA
from ..distributed import reduce_sums, sharded_evaluate, wrap_ddp
from ..engine import StepResult
from ..evaluate import EvalResult, autocast_for
from ..optim import build_optimizer, lr_at, set_lr


class TorchEngine:
    """Trains ``model`` (moved to ``cfg.runtime.device``) for a resolved config."""

    def __init__(self, cfg: TrainConfig, model: nn.Module, norm: Normalization, steps_per_epoch: int,
                 world: World | None = None) -> None:
        self.cfg, self.norm, self.steps_per_epoch = cfg, norm, steps_per_epoch
        self.world = world or World()
        self.device = torch.device(cfg.runtime.device)
        self.bf16 = cfg.runtime.precision == "bf16"
        if self.world.distributed and cfg.runtime.sync_bn and self.device.type != "cuda":
            raise ConfigError("sync_bn: PyTorch's SyncBatchNorm runs on GPUs only; on CPU drop --sync-bn "
                              "(each process then normalises with its own batch_size / processes images)")
        if self.world.distributed and cfg.runtime.sync_bn:   # a converted copy; the loop's model keeps plain BatchNorm
            model = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(model))
        self.model = model.to(self.device)
        if cfg.runtime.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.forward = wrap_ddp(self.model, self.world)   # DDP averages the gradients over the ranks
        self.optimizer = build_optimizer(cfg, self.model)
        self.ema = EMA(self.model, cfg.optim.ema) if cfg.optim.ema > 0 else None

    def train_step(self, x: torch.Tensor, y: torch.Tensor, step: int, lr: float | None = None) -> StepResult | None:
        cfg = self.cfg
        lr = lr_at(cfg, step, self.steps_per_epoch) if lr is None else lr
        set_lr(self.optimizer, lr)
        buffers = [b.detach().clone() for b in self.model.buffers()]  # BN statistics, restored on a bad step
        with autocast_for(self.device, self.bf16):
            logits = self.forward(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.optim.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        ok = bool(all_min(torch.isfinite(loss.detach()).reshape(1), self.world))  # every rank skips, or none
        if ok:
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip or math.inf)
            ok = bool(torch.isfinite(norm))
        if not ok:
            self.optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                for b, saved in zip(self.model.buffers(), buffers):
                    b.copy_(saved)
            return None
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(step)
        with torch.no_grad():
            correct = int((logits.argmax(1) == y).sum())
        loss_value = float(loss.detach())
        if self.world.distributed:   # the global batch's figures (equal slices: the mean of the ranks' means)
            loss_sum, correct = reduce_sums([loss_value, correct], self.world)
            loss_value, correct = loss_sum / self.world.size, int(correct)
        return StepResult(loss_value, correct, float(norm), lr)

    def eval_module(self) -> nn.Module:
        return self.ema.average if self.ema is not None else self.model

    def evaluate(self, dataset: ImageDataset) -> EvalResult:
        return sharded_evaluate(self.eval_module(), dataset, self.norm, self.world, bf16=self.bf16,
                                channels_last=self.cfg.runtime.channels_last, tta=self.cfg.eval.tta)

    def export_weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.eval_module().state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        state = {"model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
                 "optimizer": self.optimizer.state_dict()}
        if self.ema is not None:
            state["ema"] = self.ema.average.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(upgrade_state_dict(self.model, state["model"], "checkpoint model"))
        self.optimizer.load_state_dict(state["optimizer"])  # positional: parameter order is unchanged since 0.1
        if self.ema is not None:
            self.ema.average.load_state_dict(upgrade_state_dict(self.ema.average, state["ema"], "checkpoint ema"))
