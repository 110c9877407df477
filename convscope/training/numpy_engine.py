"""Training on the from-scratch NumPy layers (``engine: numpy``), with the same loop, progress bar, metrics,
checkpoints and run directory as the PyTorch engine. The weights start from the same initialisation as
the PyTorch model and are exported into it, so a NumPy-trained run loads and inspects like any other."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..data.dataset import ImageDataset
from ..errors import ConfigError
from ..reference import SGD, Adam, from_torch, softmax_cross_entropy, to_torch_state
from .evaluate import result_from_logits
from .loop import Trainer
from .optim import lr_at


class NumpyTrainer(Trainer):
    def __init__(self, cfg, path, progress: bool = True) -> None:
        if cfg.optimizer not in ("sgd", "adam"):
            raise ConfigError(f"optimizer: the numpy engine has sgd and adam, not {cfg.optimizer!r}")
        if cfg.device not in ("auto", "cpu"):
            raise ConfigError(f"device: the numpy engine runs on the CPU, not {cfg.device!r}")
        # the NumPy engine keeps to plain SGD/Adam training: no weight average, no test-time flips
        cfg = type(cfg)(**{**cfg.to_dict(), "device": "cpu", "channels_last": False, "ema": 0.0, "tta": False})
        super().__init__(cfg, path, progress)
        self.bf16 = False
        self.rng = np.random.default_rng(cfg.seed + 2)                     # dropout masks
        self.net = from_torch(self.model, np.float32, cfg.conv_algorithm, self.rng)
        params = self.net.parameters()
        if cfg.optimizer == "sgd":
            self.np_opt = SGD(params, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.nesterov and cfg.momentum > 0)
        else:
            self.np_opt = Adam(params, cfg.lr, weight_decay=cfg.weight_decay)

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> bool:
        cfg = self.cfg
        self.np_opt.lr = lr_at(cfg, self.step, self.steps_per_epoch)
        buffers = {id(l): {k: v.copy() for k, v in l.buffers.items()} for l in self.net.layers}
        xa, ya = x.numpy(), y.numpy()
        logits = self.net.forward(xa, train=True)
        loss, dz = softmax_cross_entropy(logits, ya, cfg.label_smoothing)
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
            return False
        if cfg.grad_clip and norm > cfg.grad_clip:
            grads = [g * (cfg.grad_clip / (norm + 1e-6)) for g in grads]
        self.np_opt.step(grads)
        self.acc["loss"] += loss * len(ya)
        self.acc["correct"] += int((logits.argmax(1) == ya).sum())
        self.acc["seen"] += len(ya)
        if self.step % cfg.log_every == 0:
            self._metric({"kind": "step", "step": self.step, "epoch": self.epoch, "loss": loss, "lr": self.np_opt.lr,
                          "grad_norm": norm})
        return True

    def evaluate(self, dataset: ImageDataset):
        logits = []
        for i in range(0, len(dataset), 1000):
            x = self.norm.apply(dataset.images[i:i + 1000]).numpy()
            logits.append(self.net.forward(x, train=False))
        return result_from_logits(torch.from_numpy(np.concatenate(logits)).float(), dataset.labels, len(dataset.classes))

    def model_state(self) -> dict[str, torch.Tensor]:
        return to_torch_state(self.net, self.model)

    def load_model_state(self, state: dict[str, torch.Tensor]) -> None:
        self.net.load_state_dict({k: v.numpy() for k, v in state.items()})

    def sync_model(self) -> None:
        self.model.load_state_dict(to_torch_state(self.net, self.model))

    def eval_module(self) -> torch.nn.Module:
        self.sync_model()
        return self.model

    def eval_state(self) -> dict[str, torch.Tensor]:
        return self.model_state()

    def optimizer_state(self) -> dict[str, Any]:
        o = self.np_opt
        t = lambda d: {k: torch.from_numpy(np.asarray(v)) for k, v in d.items()}  # noqa: E731
        if isinstance(o, SGD):
            return {"kind": "sgd", "momentum": t(o.state)}
        return {"kind": "adam", "t": o.t, "m": t(o.m), "v": t(o.v)}

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        n = lambda d: {int(k): v.numpy().copy() for k, v in d.items()}  # noqa: E731
        if state["kind"] == "sgd":
            self.np_opt.state = n(state["momentum"])
        else:
            self.np_opt.t, self.np_opt.m, self.np_opt.v = state["t"], n(state["m"]), n(state["v"])

    def extra_state(self) -> dict[str, Any]:
        return {"numpy_rng": self.rng.bit_generator.state}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["numpy_rng"]
