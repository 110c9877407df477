"""A run's test split as the pages use it: one evaluation pass (cached) that gives the confusion matrix and each
image's predicted class, the misclassified images of one confusion cell, and one test image as a PNG."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError
from ..training import Run
from ..training.evaluate import EvalResult, check_classes, predict_logits, result_from_logits
from . import pictures
from .runs import RunEntry

MAX_LISTED = 200     # misclassified images listed for one cell (the cell says how many there are in all)


def test_dataset(run: Run):
    """The run's test split (never downloaded here: a server or report works offline)."""
    from ..data import load

    return load(run.config.data.dataset, "test", run.config.data.data_dir, download=False)


@dataclass
class Evaluation:
    result: EvalResult            # accuracy, per-class accuracy, confusion (rows true, columns predicted), loss
    predicted: np.ndarray         # (N,) int64: the class the run predicts for each test image
    labels: np.ndarray            # (N,) int64: the true class


def evaluation(entry: RunEntry) -> Evaluation:
    """The run on its test split, as `convscope eval` computes it (same logits path, test-time averaging
    included), once per server."""
    def compute() -> Evaluation:
        run = entry.run
        ds = test_dataset(run)
        check_classes(run.classes, ds)
        logits = predict_logits(run.model, ds.images, run.normalization, tta=run.tta and ds.hflip_ok)
        res = result_from_logits(logits, ds.labels, len(ds.classes))
        return Evaluation(res, logits.argmax(1).numpy(), ds.labels.numpy())
    return entry.cached("evaluation", compute)


def misclassified(entry: RunEntry, true: int, pred: int) -> dict:
    """The test images of true class ``true`` predicted as ``pred`` (``true == pred``: the correct ones), each
    with its index and a small picture."""
    run = entry.run
    k = len(run.classes)
    for name, v in (("true", true), ("pred", pred)):
        if not 0 <= v < k:
            raise ConfigError(f"{name}: {v} is not a class index; this run has classes 0..{k - 1}")
    ev = evaluation(entry)
    idx = np.flatnonzero((ev.labels == true) & (ev.predicted == pred))
    images = test_dataset(run).images
    shown = idx[:MAX_LISTED]
    return {"true": true, "pred": pred, "true_name": run.classes[true], "pred_name": run.classes[pred],
            "count": int(len(idx)), "shown": int(len(shown)),
            "images": [{"index": int(i), "picture": pictures.data_uri(pictures.png_bytes(pictures.enlarge(
                pictures.gray_rgb(images[int(i)].numpy()), 56)))} for i in shown]}


def test_image_png(entry: RunEntry, index: int) -> tuple[bytes, str]:
    """Test image ``index`` at its own size (PNG, gray or RGB) and its true class name."""
    ds = test_dataset(entry.run)
    if not 0 <= index < len(ds):
        raise ConfigError(f"test_index {index}: the {ds.name!r} test split has images 0..{len(ds) - 1}")
    img: torch.Tensor = ds.images[index]
    arr = img[0].numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).numpy()
    return pictures.png_bytes(arr), ds.classes[int(ds.labels[index])]
