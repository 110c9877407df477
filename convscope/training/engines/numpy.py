"""The NumPy engine (``engine: numpy``): the from-scratch reference layers train with plain SGD or Adam in
float32 on the CPU. The weights start from the seeded PyTorch model's initialisation and are exported into
it, so a NumPy-trained run loads and inspects like any other."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from ...data.dataset import ImageDataset
from ...data.normalize import Normalization
from ...distributed import World
from ...models import upgrade_state_dict
from ...models.forward import iter_batches
from ...reference import SGD, Adam, from_torch, softmax_cross_entropy, to_torch_state
from ..config import TrainConfig
from ..distributed import check_processes
from ..engine import StepResult
from ..evaluate import EvalResult, result_from_logits
from ..optim import lr_at


class NumpyEngine:
    """Trains the NumPy twin of ``model`` (an ``nn.Sequential`` of supported layers) for a resolved config."""

    def __init__(self, cfg: TrainConfig, model: nn.Module, norm: Normalization, steps_per_epoch: int,
                 world: World | None = None) -> None:
        check_processes("numpy", world.size if world is not None else 1)
        self.cfg, self.norm, self.steps_per_epoch = cfg, norm, steps_per_epoch
        self.model = model                                                  # the torch twin weights export into
        self.rng = np.random.default_rng(cfg.runtime.seed + 2)                      # dropout masks
        self.net = from_torch(model, np.float32, cfg.runtime.conv_algorithm, self.rng)
        params = self.net.parameters()
        o = cfg.optim
        if o.optimizer == "sgd":
            self.opt = SGD(params, o.lr, o.momentum, o.weight_decay, o.nesterov and o.momentum > 0)
        else:
            self.opt = Adam(params, o.lr, weight_decay=o.weight_decay)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, step: int) -> StepResult | None:
        cfg = self.cfg
        self.opt.lr = lr_at(cfg, step, self.steps_per_epoch)
        buffers = {id(layer): {k: v.copy() for k, v in layer.buffers.items()} for layer in self.net.layers}
        xa, ya = x.numpy(), y.numpy()
        logits = self.net.forward(xa, train=True)                          # (B, classes)
        loss, dz = softmax_cross_entropy(logits, ya, cfg.optim.label_smoothing)
        ok = math.isfinite(loss)
        norm = float("nan")
        if ok:
            self.net.backward(dz)
            grads = self.net.gradients()
            norm = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads))
            ok = math.isfinite(norm)
        if not ok:
            for layer in self.net.layers:
                layer.buffers.update(buffers[id(layer)])
            return None
        if cfg.optim.grad_clip and norm > cfg.optim.grad_clip:
            grads = [g * (cfg.optim.grad_clip / (norm + 1e-6)) for g in grads]
        self.opt.step(grads)
        return StepResult(loss, int((logits.argmax(1) == ya).sum()), norm, self.opt.lr)

    def evaluate(self, dataset: ImageDataset) -> EvalResult:
        logits = [out for _, out in iter_batches(None, dataset.images, self.norm, 1000,
                                                 forward=lambda x: self.net.forward(x.numpy(), train=False))]
        return result_from_logits(torch.from_numpy(np.concatenate(logits)).float(), dataset.labels,
                                  len(dataset.classes))

    def export_weights(self) -> dict[str, torch.Tensor]:
        return to_torch_state(self.net, self.model)

    def eval_module(self) -> nn.Module:
        self.model.load_state_dict(self.export_weights())
        return self.model

    def state_dict(self) -> dict[str, Any]:
        o = self.opt
        t = lambda d: {k: torch.from_numpy(np.asarray(v)) for k, v in d.items()}  # noqa: E731
        opt = {"kind": "sgd", "momentum": t(o.state)} if isinstance(o, SGD) else \
            {"kind": "adam", "t": o.t, "m": t(o.m), "v": t(o.v)}
        return {"model": self.export_weights(), "optimizer": opt, "numpy_rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        model = upgrade_state_dict(self.model, state["model"], "checkpoint model")
        self.net.load_state_dict({k: v.numpy() for k, v in model.items()})
        opt = state["optimizer"]
        n = lambda d: {int(k): v.numpy().copy() for k, v in d.items()}  # noqa: E731
        if opt["kind"] == "sgd":
            self.opt.state = n(opt["momentum"])
        else:
            self.opt.t, self.opt.m, self.opt.v = opt["t"], n(opt["m"]), n(opt["v"])
        self.rng.bit_generator.state = state["numpy_rng"]
