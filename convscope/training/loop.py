"""The training loop: whole dataset on the device as uint8, batched augmentation, checkpoints that survive
a SIGKILL at any instant, and resumption that is bit-identical in deterministic mode.

Randomness has three sources, all restored on resume: the per-epoch data order (a pure function of
seed and epoch), the augmentation generator (state in the checkpoint) and torch's global RNG used by
dropout (state in the checkpoint). The learning rate is a pure function of the step.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .._faults import maybe_kill
from ..data import load
from ..data.augment import cutout, random_affine, random_blur, random_hflip, random_stroke, random_translate
from ..data.dataset import ImageDataset, stratified_split
from ..errors import ConfigError, ConvscopeError
from ..models import create_model, model_kwargs
from . import rundir as rd
from .checkpoint import load_state, save_state, save_weights
from .config import TrainConfig, config_from_dict
from ..data.normalize import Normalization
from .evaluate import autocast_for, evaluate
from .optim import build_optimizer, init_weights, lr_at, set_lr


class TrainingInterrupted(ConvscopeError):
    """Ctrl-C: the state was checkpointed; ``--resume`` continues."""


class TrainingDiverged(ConvscopeError):
    """Too many non-finite steps in a row; the last good checkpoint is intact."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"device: {name!r} is not a device ({e}); use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but no CUDA device is available; use --device cpu")
    return device


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast runs natively (AVX-512 BF16 / AMX on CPU; Ampere or newer on CUDA)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def epoch_order(n: int, seed: int, epoch: int, device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).to(device)


@contextlib.contextmanager
def _torch_settings(cfg: TrainConfig) -> Iterator[None]:
    """Apply threads and determinism for the run, and restore the caller's settings afterwards."""
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True)
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)


@contextlib.contextmanager
def _sigint_flag() -> Iterator[list[bool]]:
    """Turn Ctrl-C into a flag checked between steps, so a step is never cut in half."""
    flag = [False]
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag[0]:  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        flag[0] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


class Trainer:
    def __init__(self, cfg: TrainConfig, path: Path, progress: bool = True) -> None:
        self.cfg, self.path, self.progress = cfg, path, progress
        self.device = resolve_device(cfg.device)
        self.bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and native_bf16(self.device))
        self._load_data()
        torch.manual_seed(cfg.seed)
        kwargs = dict(cfg.model_args)
        if cfg.dropout is not None:
            if "dropout" not in model_kwargs(cfg.model):
                raise ConfigError(f"dropout: model {cfg.model!r} has a fixed dropout; its arguments: "
                                  f"{', '.join(model_kwargs(cfg.model)) or 'none'}")
            kwargs["dropout"] = cfg.dropout
        c, h, w = self.train_set.shape
        self.model = create_model(cfg.model, c, (h, w), len(self.train_set.classes), **kwargs)
        init_weights(self.model, cfg.init)
        self.model.to(self.device)
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(cfg, self.model)
        # the weight average (airbench-style EMA): evaluated and saved in place of the raw weights
        self.ema_model = copy.deepcopy(self.model) if cfg.ema > 0 else None
        self.aug_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        n = len(self.train_set)
        self.steps_per_epoch = max(1, n // cfg.batch_size)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        # progress state (all of it goes into the checkpoint)
        self.step = 0
        self.epoch = 0
        self.batch = 0
        self.bad_streak = 0
        self.skipped = 0
        self.elapsed = 0.0
        self.acc = {"loss": 0.0, "correct": 0, "seen": 0}
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"val_accuracy": -1.0, "epoch": -1, "weights": None}
        self.stopped_early = False

    # ---- data ------------------------------------------------------------------------------------------
    def _load_data(self) -> None:
        cfg = self.cfg
        train = load(cfg.dataset, "train", cfg.data_dir)
        self.test_set = load(cfg.dataset, "test", cfg.data_dir)
        if 0 < cfg.train_subset < len(train):  # a class-stratified subset (datasets are often sorted by class)
            _, keep = stratified_split(train.labels.numpy(), cfg.train_subset / len(train), "subset")
            train = train.subset(keep)
        self.val_set: ImageDataset | None = None
        if cfg.val_fraction > 0:
            tr_idx, val_idx = stratified_split(train.labels.numpy(), cfg.val_fraction, f"val:{cfg.seed}")
            self.val_set = train.subset(val_idx, "val")
            train = train.subset(tr_idx)
        if len(train) == 0:
            raise ConfigError(f"dataset {cfg.dataset!r}: no training images left")
        if cfg.hflip and not train.hflip_ok:
            raise ConfigError(f"hflip: dataset {cfg.dataset!r} does not allow horizontal flips "
                              "(mirrored digits change meaning); remove --hflip")
        self.train_set = train
        self.norm = Normalization.of(train.images)
        self.images = train.images.to(self.device)      # uint8 (N, C, H, W), moved once
        self.labels = train.labels.to(self.device)

    def _batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        x = self.images[idx].to(torch.float32).div_(255.0)   # (B, C, H, W) in [0, 1]
        x = random_translate(x, cfg.translate, self.aug_gen)
        x = random_affine(x, self.aug_gen, cfg.rotate, cfg.scale, cfg.aspect)  # each a no-op (no draw) when 0
        x = random_stroke(x, self.aug_gen, cfg.stroke)
        x = random_blur(x, self.aug_gen, cfg.blur)
        if cfg.hflip:
            x = random_hflip(x, self.aug_gen)
        x = cutout(x, cfg.cutout, self.aug_gen)
        x = self.norm.normalize(x)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.labels[idx]

    # ---- checkpoint ------------------------------------------------------------------------------------
    # ---- hooks an engine overrides (see numpy_engine.py) -----------------------------------------------
    def evaluate(self, dataset: ImageDataset):
        model = self.ema_model if self.ema_model is not None else self.model
        return evaluate(model, dataset, self.norm, bf16=self.bf16, channels_last=self.cfg.channels_last,
                        tta=self.cfg.tta)

    def eval_module(self) -> torch.nn.Module:
        """The torch module holding the weights that are evaluated (the average, when ``ema`` is on)."""
        return self.ema_model if self.ema_model is not None else self.model

    def eval_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.eval_module().state_dict().items()}

    @torch.no_grad()
    def _update_ema(self) -> None:
        """ema = d * ema + (1 - d) * weights; buffers (BN statistics) are copied. Early steps use a smaller d
        (d_t = min(d, (1 + t) / (10 + t))) so the average is not dominated by the random initialisation."""
        d = min(self.cfg.ema, (1 + self.step) / (10 + self.step))
        ema_p = [p for p in self.ema_model.parameters()]
        torch._foreach_mul_(ema_p, d)
        torch._foreach_add_(ema_p, [p.detach() for p in self.model.parameters()], alpha=1 - d)
        for b_ema, b in zip(self.ema_model.buffers(), self.model.buffers()):
            b_ema.copy_(b)

    def model_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def load_model_state(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)

    def sync_model(self) -> None:
        """Make ``self.model`` (the torch module that is saved and returned) hold the trained weights
        (the weight average, when ``ema`` is on)."""
        if self.ema_model is not None:
            self.model.load_state_dict(self.ema_model.state_dict())

    def optimizer_state(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)

    def extra_state(self) -> dict[str, Any]:
        return {"ema": self.ema_model.state_dict()} if self.ema_model is not None else {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.ema_model is not None:
            self.ema_model.load_state_dict(state["ema"])

    def state(self) -> dict[str, Any]:
        metrics = self.path / rd.METRICS
        return {
            "model": self.model_state(), "optimizer": self.optimizer_state(), "extra": self.extra_state(),
            "step": self.step, "epoch": self.epoch, "batch": self.batch, "bad_streak": self.bad_streak,
            "skipped": self.skipped, "elapsed": self.elapsed, "acc": dict(self.acc), "history": self.history,
            "best": self.best, "stopped_early": self.stopped_early,
            "aug_rng": self.aug_gen.get_state(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "metrics_bytes": metrics.stat().st_size if metrics.exists() else 0,
        }

    def save(self) -> None:
        try:
            save_state(self.path / rd.CHECKPOINT, self.state())
        except OSError as e:
            raise rd.RunError(f"{self.path / rd.CHECKPOINT}: cannot save the checkpoint ({e.strerror or e}); "
                              "free disk space or make the run directory writable, then --resume") from e

    def restore(self, st: dict[str, Any]) -> None:
        self.load_model_state(st["model"])
        self.load_optimizer_state(st["optimizer"])
        self.load_extra_state(st["extra"])
        for key in ("step", "epoch", "batch", "bad_streak", "skipped", "elapsed", "acc", "history", "best",
                    "stopped_early"):
            setattr(self, key, st[key])
        self.aug_gen.set_state(st["aug_rng"])
        torch.set_rng_state(st["torch_rng"])
        if st["cuda_rng"]:
            torch.cuda.set_rng_state_all(st["cuda_rng"])
        metrics = self.path / rd.METRICS
        if metrics.exists():  # drop lines written after the checkpoint: they will be written again
            with open(metrics, "r+b") as f:
                f.truncate(st["metrics_bytes"])

    def _metric(self, record: dict[str, Any]) -> None:
        try:
            with open(self.path / rd.METRICS, "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:
            raise rd.RunError(f"{self.path / rd.METRICS}: cannot write ({e.strerror or e})") from e

    # ---- the loop --------------------------------------------------------------------------------------
    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> bool:
        """One optimizer step; returns False (and changes nothing) when the loss or a gradient is not finite."""
        cfg = self.cfg
        set_lr(self.optimizer, lr_at(cfg, self.step, self.steps_per_epoch))
        buffers = [b.detach().clone() for b in self.model.buffers()]  # BN statistics, restored on a bad step
        with autocast_for(self.device, self.bf16):
            logits = self.model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        ok = bool(torch.isfinite(loss))
        if ok:
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip or math.inf)
            ok = bool(torch.isfinite(norm))
        if not ok:
            self.optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                for b, saved in zip(self.model.buffers(), buffers):
                    b.copy_(saved)
            return False
        self.optimizer.step()
        if self.ema_model is not None:
            self._update_ema()
        with torch.no_grad():
            self.acc["loss"] += float(loss.detach()) * len(y)
            self.acc["correct"] += int((logits.argmax(1) == y).sum())
            self.acc["seen"] += len(y)
        if self.step % cfg.log_every == 0:
            self._metric({"kind": "step", "step": self.step, "epoch": self.epoch, "loss": float(loss.detach()),
                          "lr": self.optimizer.param_groups[0]["lr"], "grad_norm": float(norm)})
        return True

    def _end_epoch(self, seconds: float, images: int) -> None:
        cfg = self.cfg
        test = self.evaluate(self.test_set)
        record = {"kind": "epoch", "epoch": self.epoch + 1, "step": self.step,
                  "train_loss": self.acc["loss"] / max(1, self.acc["seen"]),
                  "train_accuracy": self.acc["correct"] / max(1, self.acc["seen"]),
                  "test_accuracy": test.accuracy, "test_loss": test.loss, "seconds": round(self.elapsed, 3),
                  "images_per_s": round(images / max(seconds, 1e-9), 1), "skipped_steps": self.skipped}
        if self.val_set is not None:
            val = self.evaluate(self.val_set)
            record["val_accuracy"] = val.accuracy
            if val.accuracy > self.best["val_accuracy"]:
                self.best = {"val_accuracy": val.accuracy, "epoch": self.epoch + 1, "weights": self.eval_state()}
            elif cfg.early_stopping and self.epoch + 1 - self.best["epoch"] >= cfg.early_stopping:
                self.stopped_early = True
        if cfg.track_sparsity:
            record["sparsity"] = self._sparsity()
        self.history.append(record)
        self._metric(record)
        self.acc = {"loss": 0.0, "correct": 0, "seen": 0}
        self.epoch += 1
        self.batch = 0

    def _sparsity(self) -> dict[str, float]:
        """Exactly-zero fraction of each activation layer on the first 1,000 test images."""
        from ..inspect.sparsity import activation_sparsity

        probe = self.test_set.subset(torch.arange(min(1000, len(self.test_set))))
        res = activation_sparsity(self.eval_module(), probe, self.norm, hist_range=(0.0, 1.0), bins=1)
        return {r.name: round(r.zero_fraction, 6) for r in res}

    def run(self) -> None:
        cfg = self.cfg
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not self.progress, leave=False, unit="step",
                   dynamic_ncols=True)
        with _sigint_flag() as interrupted, bar:
            while self.epoch < cfg.epochs and not self.stopped_early:
                order = epoch_order(len(self.train_set), cfg.seed, self.epoch, self.device)
                bs = min(cfg.batch_size, len(self.train_set))
                bar.set_description(f"epoch {self.epoch + 1}/{cfg.epochs}")
                t_epoch, images = time.perf_counter(), 0
                while self.batch < self.steps_per_epoch:
                    t0 = time.perf_counter()
                    x, y = self._batch(order[self.batch * bs:(self.batch + 1) * bs])
                    if self._train_step(x, y):
                        self.bad_streak = 0
                    else:
                        self.skipped += 1
                        self.bad_streak += 1
                        if self.bad_streak >= cfg.max_bad_steps:
                            raise TrainingDiverged(
                                f"{self.bad_streak} non-finite steps in a row at step {self.step} "
                                f"(loss or gradients are inf/NaN); lower --lr or set --grad-clip. "
                                f"The last good checkpoint is intact in {self.path / rd.CHECKPOINT}")
                    self.step += 1
                    self.batch += 1
                    images += len(y)
                    self.elapsed += time.perf_counter() - t0
                    maybe_kill("step")
                    seen = max(1, self.acc["seen"])
                    bar.set_postfix(loss=f"{self.acc['loss'] / seen:.3f}", acc=f"{self.acc['correct'] / seen:.3f}",
                                    img_s=f"{images / max(time.perf_counter() - t_epoch, 1e-9):.0f}", refresh=False)
                    bar.update()
                    if interrupted[0]:
                        self.save()
                        raise TrainingInterrupted(f"interrupted at step {self.step}; checkpoint saved. "
                                                  f"Continue with: convscope train --resume {self.path}")
                    if self.step % cfg.checkpoint_every == 0 and self.batch < self.steps_per_epoch:
                        self.save()
                t0 = time.perf_counter()
                self._end_epoch(t0 - t_epoch, images)
                self.save()
                if self.progress:
                    h = self.history[-1]
                    bar.write(f"epoch {h['epoch']:>3}/{cfg.epochs}  loss {h['train_loss']:.4f}  "
                              f"train {h['train_accuracy']:.4f}  test {h['test_accuracy']:.4f}"
                              + (f"  val {h['val_accuracy']:.4f}" if "val_accuracy" in h else "")
                              + f"  {h['images_per_s']:.0f} img/s")

    def finish(self) -> rd.Run:
        """Final weights (the best validation epoch's, with early stopping), summary, curve, manifest."""
        from .curves import plot_curves

        cfg = self.cfg
        self.sync_model()
        if self.best["weights"] is not None and cfg.early_stopping:
            self.model.load_state_dict(self.best["weights"])
        # the final figure in fp32, as `convscope eval` and inference compute it (epochs may evaluate in bf16)
        test = evaluate(self.model, self.test_set, self.norm, tta=cfg.tta)
        c, h, w = self.train_set.shape
        meta = rd.model_metadata(self.model, cfg, self.norm, self.train_set.classes, (c, h, w))
        meta["tta"] = bool(cfg.tta and self.train_set.hflip_ok)  # predictions average the mirror too
        summary = {
            "test_accuracy": test.accuracy, "test_loss": test.loss, "epochs": self.epoch, "steps": self.step,
            "seconds": round(self.elapsed, 3), "skipped_steps": self.skipped, "stopped_early": self.stopped_early,
            "best_val_accuracy": self.best["val_accuracy"] if self.val_set is not None else None,
            "best_val_epoch": self.best["epoch"] if self.val_set is not None else None,
            "train_images": len(self.train_set), "test_images": len(self.test_set),
            "device": str(self.device), "bf16": self.bf16, "threads": torch.get_num_threads(),
            "per_class_accuracy": dict(zip(self.train_set.classes, test.per_class)),
        }
        try:
            save_weights(self.path / rd.WEIGHTS, self.model.state_dict(), {"model": meta["model"]})
            rd.write_json(self.path / rd.SUMMARY, summary)
            plot_curves(self.history, self.path / rd.CURVE, title=f"{cfg.model} on {cfg.dataset}",
                        train_label="train (label-smoothed)" if cfg.label_smoothing else "train")
            rd.write_manifest(self.path, meta)
        except OSError as e:
            raise rd.RunError(f"{self.path}: cannot write the run's results ({e.strerror or e})") from e
        self.model.eval()
        return rd.Run(self.path, self.model, cfg, self.norm, self.train_set.classes, (c, h, w), summary, meta)


def make_trainer(cfg: TrainConfig, path: Path, progress: bool) -> Trainer:
    if cfg.engine == "numpy":
        from .numpy_engine import NumpyTrainer

        return NumpyTrainer(cfg, path, progress)
    return Trainer(cfg, path, progress)


def train(config: TrainConfig | dict[str, Any] | None = None, *, out: str | Path | None = None,
          runs_dir: str | Path = "runs", progress: bool = True) -> rd.Run:
    """Train a model; returns the finished :class:`Run`. ``config``: a TrainConfig or a dict of its keys."""
    cfg = config if isinstance(config, TrainConfig) else config_from_dict(config or {})
    cfg.validate()
    path = rd.new_run_dir(Path(runs_dir), cfg.run_name, Path(out) if out is not None else None)
    rd.write_json(path / rd.CONFIG, cfg.to_dict())
    with _torch_settings(cfg), torch.random.fork_rng(devices=[]):
        trainer = make_trainer(cfg, path, progress)
        trainer.save()
        trainer.run()
        return trainer.finish()


def resume(path: str | Path, *, progress: bool = True) -> rd.Run:
    """Continue a run from its checkpoint (after a kill, a crash or Ctrl-C); a finished run is just loaded."""
    path = Path(path)
    if (path / rd.META).exists():
        return rd.load_run(path)
    if not (path / rd.CONFIG).exists():
        raise rd.RunError(f"{path}: no {rd.CONFIG}; not a convscope run directory")
    cfg = config_from_dict(json.loads((path / rd.CONFIG).read_text()), source=str(path / rd.CONFIG))
    for stale in path.glob(".*.part"):  # temp files of a write that a kill cut short
        stale.unlink()
    with _torch_settings(cfg), torch.random.fork_rng(devices=[]):
        trainer = make_trainer(cfg, path, progress)
        if (path / rd.CHECKPOINT).exists():
            trainer.restore(load_state(path / rd.CHECKPOINT))
        else:  # killed before the first checkpoint (written before step 1): nothing was trained yet
            (path / rd.METRICS).unlink(missing_ok=True)
            trainer.save()
        trainer.run()
        return trainer.finish()
