"""A finished run as training sees it: :class:`Run` (the model, its :class:`TrainConfig`, what it measured) and
:func:`load_run`, built on the run-directory reader in :mod:`convscope.runs`; and the model.json that training
writes (:func:`model_metadata`)."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._result import RichDisplay
from .._version import __version__
from ..data.normalize import Normalization
from ..data.prepare import default_mode as default_prepare
from ..runs import rundir as rd
from ..runs.rundir import RunError
from .config import TrainConfig, recorded_config, retired_settings


@dataclass(repr=False)
class Run(RichDisplay):
    """A finished (or loaded) run: the model with its weights, its config and what it measured. In a notebook it
    shows its summary, per-class accuracy, training curves and confusion matrix; in a terminal, the summary."""

    path: Path
    model: nn.Module
    config: TrainConfig
    normalization: Normalization
    classes: tuple[str, ...]
    input_shape: tuple[int, int, int]
    summary: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """The records of metrics.jsonl, one JSON object a line (read defensively: see ``runs.read_metrics``)."""
        return rd.read_metrics(self.path / rd.METRICS)

    @property
    def tta(self) -> bool:
        """Whether this run's predictions average each image with its mirror (flip test-time augmentation)."""
        return bool(self.meta.get("tta", False))

    def logits(self, inp: torch.Tensor) -> torch.Tensor:
        """Float32 logits (B, classes) of preprocessed input (B, C, H, W), with the run's test-time averaging.
        Float input of another precision is converted to the model's; uint8 images are refused, with a pointer
        to :meth:`preprocess`, which turns them into this input."""
        from ..models.forward import model_input
        from .evaluate import TTA

        return TTA(self.model, self.tta)(model_input(self.model, inp, "inp", self.input_shape))

    def preprocess(self, images_u8: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) -> the normalized float input the model was trained on; images of another shape
        than the run's (C, H, W) are refused, with how to convert them."""
        return self.normalization.apply(images_u8, self.input_shape)

    def export_onnx(self, path: str | os.PathLike[str], **kwargs: Any):
        """Write this run as an ONNX file, checked against torch on its test split: see
        :func:`convscope.training.export.export_onnx` (returns its :class:`~convscope.training.export.OnnxExport`)."""
        from .export import export_onnx

        return export_onnx(self, path, **kwargs)

    def _display(self):
        from .display import run_display

        return run_display(self)

    def _pictures(self) -> list[tuple[str, bytes]]:
        from .display import run_pictures

        return run_pictures(self)

    @property
    def dataset_spec(self) -> dict[str, Any]:
        return {"name": self.config.data.dataset, "data_dir": self.config.data.data_dir,
                "input_shape": list(self.input_shape), "classes": list(self.classes)}


def model_metadata(model: nn.Module, cfg: TrainConfig, norm: Normalization, classes, input_shape) -> dict[str, Any]:
    spec = getattr(model, "convscope_spec", {})
    return {
        "model": spec.get("name", cfg.model.name),
        "model_args": spec.get("kwargs", cfg.model.args),
        "input_shape": list(input_shape),
        "num_classes": len(classes),
        "classes": list(classes),
        "normalization": {"mean": list(norm.mean), "std": list(norm.std)},
        "prepare": default_prepare({"dataset": cfg.data.dataset, "input_shape": list(input_shape)}),
        "dataset": cfg.data.dataset,
        "convscope_version": __version__,
        "torch_version": torch.__version__,
        "git_commit": rd.git_commit(),
    }


def load_run(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Run:
    """Load a finished run: checks every file's recorded SHA-256 and loads weights from safetensors only.
    ``map_location``: the device the model goes to (``"cpu"``, ``"cuda:0"``, a torch.device), one that exists
    here."""
    loaded = rd.load_run_model(path, map_location)
    path = loaded.path    # every file model.json records, config.json included, was checked by load_run_model
    raw_config = rd.read_json(path / rd.CONFIG)
    cfg = recorded_config(raw_config, source=str(path / rd.CONFIG))
    shift = retired_settings(raw_config).get("tta_shift") or loaded.meta.get("tta_shift")
    if shift:
        warnings.warn(f"{path}: this run recorded test-time shifts of {shift} px (tta_shift), which convscope no "
                      "longer averages (the ablation measured -0.07 points); its evaluation and predictions use "
                      "the image itself" + (" and its mirror" if loaded.meta.get("tta") else ""), UserWarning,
                      stacklevel=2)
    summary = rd.read_json(path / rd.SUMMARY) if (path / rd.SUMMARY).exists() else {}
    if not isinstance(summary, dict):
        raise RunError(f"{path / rd.SUMMARY}: expected a JSON object, got {type(summary).__name__}")
    return Run(path, loaded.model, cfg, loaded.normalization, loaded.classes, loaded.input_shape, summary,
               loaded.meta)
