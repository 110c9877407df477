"""The models a refine experiment runs on, with their data: a run directory, a ``Run`` or an ``nn.Module`` (with
train and test datasets) as a :class:`Target`, and the further models of one recipe that ``models=N`` trains."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from torch import nn

from ..data.dataset import ImageDataset
from ..data.normalize import Normalization
from ..errors import ConfigError
from ..models.output import output_classes
from ..training.evaluate import TTA


@dataclasses.dataclass
class Target:
    """One model to refine, with its data: what ``load_target`` makes of a run directory, a Run or an nn.Module.
    ``views`` turns (model, input) into the logits the measurements use."""

    model: nn.Module
    train: ImageDataset
    test: ImageDataset
    norm: Normalization
    views: Callable
    tta: bool
    run: object = None                       # the Run, when there is one (its config: the own-objective control)
    name: str = "model"


def load_target(target, train, test, normalization, tta) -> Target:
    """A run directory, a Run, or an nn.Module (with ``train`` and ``test``) as a :class:`Target`. A run is
    measured with its own evaluation (``Run.logits``, with whatever test-time views it records) unless ``tta``
    overrides it, and refined on exactly the images it trained on."""
    from ..data import load
    from ..training import Run, load_run, training_split

    if isinstance(target, (str, Path)):
        target = load_run(target)
    if isinstance(target, Run):
        run = target
        tr = train if train is not None else training_split(run).train   # exactly the images it trained on
        te = test if test is not None else load(run.config.dataset, "test", run.config.data_dir)
        views = (lambda m, x: dataclasses.replace(run, model=m).logits(x)) if tta is None else _flip_views(tta, te)
        return Target(run.model, tr, te, normalization or run.normalization, views,
                      run.tta if tta is None else bool(tta), run, str(run.path))
    if not isinstance(target, nn.Module):
        raise ConfigError(f"refine: expected a run directory, a Run or an nn.Module, got {type(target).__name__}")
    if train is None or test is None:
        raise ConfigError("refine on an nn.Module: give train= and test= datasets (convscope.data.load(...))")
    for name, ds in (("train", train), ("test", test)):
        if not isinstance(ds, ImageDataset):    # tensors have no labels or known scale
            raise ConfigError(f"{name}: expected a convscope.data.ImageDataset (convscope.data.load(...)), got "
                              f"{type(ds).__name__}")
    c = train.shape[0]
    norm = normalization or Normalization((0.0,) * c, (1.0,) * c)
    classes = output_classes(target, train.shape, "model", "train")     # the output contract, once
    if classes != len(train.classes) or tuple(test.classes) != tuple(train.classes):
        raise ConfigError(f"model: gives {classes} class scores per image; the train set {train.name!r} has "
                          f"{len(train.classes)} classes and the test set {test.name!r} {len(test.classes)}; refine "
                          "measures accuracy, so give the datasets of the model's classes", arg="model")
    return Target(target, train, test, norm, _flip_views(tta, test), bool(tta), None, type(target).__name__)


def more_models(first: Target, n: int, say: Callable[[str], None]) -> list:
    """Runs 2..n: the first run's config with ``--seed`` +1, +2, ... (the seed draws the initialisation, the data
    order and the augmentation), trained into FIRST/experiments/refine-models/seed-S, or loaded from there if
    an earlier refine trained them already."""
    from ..training import load_run, train as train_run

    if first.run is None:
        raise ConfigError("models: training more models needs a run directory (it copies the run's recipe); with "
                          "an nn.Module give a list of models instead")
    run = first.run
    folder = run.path / "experiments" / "refine-models"
    out = []
    for i in range(1, n):
        seed = run.config.runtime.seed + i
        path = folder / f"seed-{seed}"
        cfg = dataclasses.replace(run.config, runtime=dataclasses.replace(run.config.runtime, seed=seed))
        if path.exists():
            try:
                other = load_run(path)
            except ConfigError as e:
                raise ConfigError(f"models: {path} exists but is not a finished run ({e}); finish it with "
                                  f"`convscope train --resume {path}` or delete it") from None
            if dataclasses.replace(other.config, runtime=run.config.runtime) != \
                    dataclasses.replace(run.config, runtime=run.config.runtime) or other.config.runtime.seed != seed:
                raise ConfigError(f"models: {path} was trained with another recipe than {run.path}; delete it")
            say(f"model {i + 1}/{n}: {path} (trained earlier)")
            out.append(other)
            continue
        say(f"model {i + 1}/{n}: training {run.config.model} with seed {seed} into {path}")
        train_run(cfg, out=path, progress=False)
        out.append(load_run(path))                   # the stored weights, as a later call would load them
    return out


def _flip_views(tta: bool | None, test: ImageDataset):
    """Logits without the run's own views: plain, or with ``tta`` averaged with the mirrored input where a
    mirror keeps the label (as ``evaluate`` decides)."""
    return lambda m, x: TTA(m, bool(tta) and test.hflip_ok)(x)
