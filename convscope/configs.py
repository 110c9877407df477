"""Typed configs of the inspection and experiment commands: refine, visualize and explain.

Each field is declared once with :func:`convscope._check.option` — its default, help, range, finiteness and
choices — and that one declaration drives the checks in ``__post_init__`` (Python callers get a ConfigError naming
the field) and the CLI flags (``cli/_options.py`` generates them; nothing is restated in ``cli/``).

Torch-free on purpose: the CLI builds its parsers from these classes without importing torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ._check import SEED_MAX, check_fields, fail, from_dict, option
from ._check import threads as check_threads

# Upper bounds on the work one call asks for: far above any useful value, far below "runs for days".
STEPS_MAX = 100_000         # optimization steps (visualize: a forward + backward pass of the batch each)
TOPK_MAX = 1_000            # top images kept per channel (topk, refine)
PROJECT_K_MAX = 100         # projections per unit (two backward passes each, every one drawn)
VARIANTS = ("maximize", "maximize-random", "maximize-representative", "maximize-bottom", "rotate", "top", "random",
            "representative", "full", "full-own")
BN_MODES = ("frozen", "reestimate")
MEASURES = ("mean", "max", "neuron")
PARAMS = ("fourier", "pixel")                       # inspect/param.py's parameterizations
# The classic hand-made edge filters of the edge experiment (inspect/edges.py), (3, 3) each: plain integers here so
# the command line lists their names without importing NumPy or torch.
EDGE_FILTERS: dict[str, tuple[tuple[int, ...], ...]] = {
    "sobel-x": ((-1, 0, 1), (-2, 0, 2), (-1, 0, 1)),
    "sobel-y": ((-1, -2, -1), (0, 0, 0), (1, 2, 1)),
    "prewitt-x": ((-1, 0, 1), (-1, 0, 1), (-1, 0, 1)),
    "prewitt-y": ((-1, -1, -1), (0, 0, 0), (1, 1, 1)),
    "scharr-x": ((-3, 0, 3), (-10, 0, 10), (-3, 0, 3)),
    "laplacian": ((0, 1, 0), (1, -4, 1), (0, 1, 0)),
    "laplacian-8": ((1, 1, 1), (1, -8, 1), (1, 1, 1)),
}
LAYER_METHODS = ("gradcam", "guided_gradcam")     # the attribution methods that run at a layer
ATTRIBUTION_METHODS = ("saliency", "smoothgrad", "integrated_gradients", "gradcam", "occlusion", "guided_gradcam",
                       "guided_backprop", "deconvnet")


def _at_most(limit: int, why: str):
    """A field check: the value is at most ``limit`` (an upper bound on work), with ``why`` in the message."""
    def check(value: int, name: str) -> int:
        if value > limit:
            raise fail(name, f"must be at most {limit:,}, got {value:,}: {why}")
        return value
    return check


_STEPS_WHY = ("each step is a forward and backward pass, so this would run for hours or days; a few hundred to a "
              "few thousand steps converge")


class _Config:
    """Shared behaviour: fields checked on construction, ``from_dict`` refusing unknown keys, ``to_dict``."""

    def __post_init__(self) -> None:
        check_fields(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Any:
        """A config from a dict of field values; unknown keys are an error that lists the valid ones."""
        return from_dict(cls, values)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclass
class RefineConfig(_Config):
    """What the refine experiment runs (``convscope experiment refine``). The defaults are meant to fit 10 minutes on
    two free cores; what they cost is measured by ``bench/lecture_tables.py --only refine-default`` (docs/refine.md)."""

    layer: str = option("conv3", "the conv layer whose kernels are refined")
    response: str | None = option(None, "layer whose channel peaks are the kernels' response (default: the layer)",
                                  kind="str")
    k: int = option(9, "top images per kernel", lo=1,
                    check=_at_most(TOPK_MAX, "the top images of every kernel are kept, and each is trained on"))
    steps: int = option(30, "optimisation steps per variant", lo=1, check=_at_most(STEPS_MAX, _STEPS_WHY))
    eval_every: int = option(10, "measure every N steps (and at the start and the end)", lo=1)
    seeds: tuple[int, ...] = option((0, 1, 2), "comma-separated seeds of each variant (per model: the batch order; "
                                    "also the random images, kernels' random images and rotation directions)",
                                    kind="ints", lo=0, hi=SEED_MAX, unique=True)
    models: int = option(1, "independently trained models: the runs given, then more trained like the first with "
                            "--seed +1, +2, ... (new initialisation, data order and augmentation draws; kept in "
                            "RUN/experiments/refine-models/)", lo=1, hi=20)
    bootstrap: int = option(2000, "bootstrap resamples of the test images for confidence intervals", lo=100,
                            check=_at_most(100_000, "each resample re-scores every test image's prediction; 1,000 "
                                                    "to 2,000 are usual for a 95% interval"))
    variants: tuple[str, ...] = option(VARIANTS, "comma-separated subset of " + ",".join(VARIANTS), kind="names",
                                       choices=VARIANTS)
    batch_size: int = option(64, "images per step (fewer when the chosen set is smaller)", lo=1)
    lr: float = option(0.01, "fine-tune variants: SGD learning rate (per batch, mean loss)", lo=0, hi=10,
                       lo_open=True, hi_open=True)
    momentum: float = option(0.9, "fine-tune variants: SGD momentum", lo=0, hi=1, hi_open=True)
    angle: float = option(0.01, "maximize: radians each kernel turns per step", lo=0, hi=10, lo_open=True,
                          hi_open=True)
    params: str = option("layer", "what the fine-tune variants train: the layer's parameters or all",
                         choices=("layer", "all"))
    bn: tuple[str, ...] = option(BN_MODES, "BN statistics when measuring: " + ",".join(BN_MODES), kind="names",
                                 choices=BN_MODES)
    bn_images: int = option(2000, "training images to re-estimate BN on (a fixed sample)", lo=1)
    train_limit: int = option(0, "use N training images, class-stratified (0 = all)", lo=0)
    test_limit: int = option(0, "use N test images, class-stratified (0 = all)", lo=0)
    after_topk: bool = option(False, "recompute the top-k after refinement (seed 0)")
    threads: int | None = option(None, "torch threads (default: the CPUs free at the start, counted once and recorded "
                                       "in results.json; that count reproduces the results)", kind="int", lo=1,
                                 check=check_threads)

    def __post_init__(self) -> None:
        super().__post_init__()
        if "rotate" in self.variants and "maximize" not in self.variants:
            raise fail("variants", "'rotate' turns each kernel by the angle 'maximize' turned it: add 'maximize' "
                                   "(variants=maximize,rotate,...)")


@dataclass
class VisualizeConfig(_Config):
    """How ``visualize`` optimizes each unit's image (``convscope visualize``)."""

    measure: str = option("max", "reduce each map by its max (what topk ranks by), mean, or its centre unit (neuron)",
                          choices=MEASURES)
    neuron: bool = option(False, "the centre unit of each channel, not the map's max (measure neuron)")
    steps: int = option(256, "optimization steps (usual: 256-2048)", lo=1, check=_at_most(STEPS_MAX, _STEPS_WHY))
    seed: int = option(0, "seed of the starting images and the transforms", lo=0, hi=SEED_MAX)
    param: str = option("fourier", "image parameterization", choices=PARAMS)
    lr: float | None = option(None, "Adam learning rate (default: the parameterization's)", kind="float", lo=0,
                              lo_open=True, cli=False)
    tv: float = option(0.0, "total-variation weight (0..1 pixel scale; around 0.01-10)", lo=0)
    l2: float = option(0.0, "L2 weight", lo=0)
    blur: float = option(0.0, "blur-penalty weight", lo=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.neuron:
            if self.measure not in ("max", "neuron"):   # max is the default: not a choice we can tell was made
                raise fail("neuron", f"neuron is the measure 'neuron' (the centre unit); it contradicts measure "
                                     f"{self.measure!r}: give one of them")
            self.measure = "neuron"


@dataclass
class ExplainConfig(_Config):
    """What ``convscope explain`` attributes: which methods, which class, which layer; ``audit`` for the table."""

    method: tuple[str, ...] | None = option(None, "comma-separated methods (default: all): "
                                                  + ", ".join(ATTRIBUTION_METHODS), kind="names",
                                            choices=ATTRIBUTION_METHODS)
    target: int | None = option(None, "class to explain (default: the predicted one)", kind="int", lo=0)
    layer: str | None = option(None, "Grad-CAM layer (default: the activation after the last conv block)",
                               kind="str")
    index: int = option(0, "image index in the split", lo=0)
    audit: bool = option(False, "randomization sanity check and deletion/insertion per method on the first "
                                "--limit images (default 500)")
    ssim: bool = option(False, "--audit: also the SSIM of each randomized map")
    seed: int = option(0, "seed of the audit's randomization", lo=0, hi=SEED_MAX)

    def __post_init__(self) -> None:
        super().__post_init__()
        # a layer only Grad-CAM reads: given with other methods alone it was silently ignored (--layer nope, rc 0)
        if self.layer is not None and not set(self.methods) & set(LAYER_METHODS):
            raise fail("layer", f"only {' and '.join(LAYER_METHODS)} run at a layer, and the methods asked for "
                                f"({', '.join(self.methods)}) do not; leave the layer out, or add a method that "
                                "uses it (e.g. gradcam)")

    @property
    def methods(self) -> tuple[str, ...]:
        return self.method if self.method is not None else ATTRIBUTION_METHODS


__all__ = ["ATTRIBUTION_METHODS", "BN_MODES", "MEASURES", "PARAMS", "PROJECT_K_MAX", "SEED_MAX", "STEPS_MAX",
           "TOPK_MAX", "VARIANTS", "ExplainConfig", "RefineConfig", "VisualizeConfig"]
