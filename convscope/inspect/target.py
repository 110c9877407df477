"""What the inspection tools look at: a convscope run, or any user ``nn.Module`` class plus safetensors weights.

A user model file is imported as a module named ``USER_MODULE_PREFIX + <hash>``; an exception raised inside
its code (at import, in ``__init__`` or in ``forward``) is the user's, not convscope's: the CLI
(``convscope.cli.main``) recognises it by a traceback frame in such a module's file and reports
"your model raised <Type>: <message>" with that traceback (see :func:`user_code_frames`)."""

from __future__ import annotations

import importlib.util
import inspect
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError
from ..data.normalize import Normalization
from ..models.output import output_classes
from ..models.probe import eval_mode, zeros_forward


USER_MODULE_PREFIX = "convscope_user_model_"


def user_code_frames(exc: BaseException) -> list[traceback.FrameSummary]:
    """The frames of ``exc``'s traceback that lie in a user model file loaded by :func:`load_model_file`
    (empty: the exception did not pass through the user's code)."""
    files = {getattr(m, "__file__", None) for name, m in list(sys.modules.items())
             if name.startswith(USER_MODULE_PREFIX)}
    files.discard(None)
    return [f for f in traceback.extract_tb(exc.__traceback__) if f.filename in files]


@dataclass
class Target:
    model: nn.Module
    input_shape: tuple[int, int, int]
    normalization: Normalization
    classes: tuple[str, ...] | None
    dataset: str
    out_dir: Path            # where PNG + JSON go (the run's inspect/ folder)
    prepare: str = "none"    # how an image file becomes input (convscope.data.prepare.default_mode of the run)
    num_classes: int | None = None   # class scores per image (a run: len(classes))

    def preprocess(self, images_u8: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) of the target's input shape -> model input."""
        return self.normalization.apply(images_u8, self.input_shape)


def from_run(path: str | Path) -> Target:
    from ..data.prepare import default_mode
    from ..runs.rundir import load_run_model

    run = load_run_model(path)
    return Target(run.model.eval(), run.input_shape, run.normalization, run.classes, run.dataset,
                  Path(path) / "inspect", default_mode(run.meta), len(run.classes))


def load_model_file(spec: str, weights: str | Path | None) -> nn.Module:
    """``path.py:ClassName`` instantiated with no arguments; weights from safetensors (strict)."""
    if ":" not in spec:
        raise ConfigError(f"--model-file {spec!r}: expected path.py:ClassName")
    file, cls_name = spec.rsplit(":", 1)
    path = Path(file)
    if not path.is_file():
        raise ConfigError(f"--model-file {file}: no such file")
    module_name = f"{USER_MODULE_PREFIX}{abs(hash(str(path.resolve())))}"
    spec_obj = importlib.util.spec_from_file_location(module_name, path)
    if spec_obj is None or spec_obj.loader is None:
        raise ConfigError(f"--model-file {file}: cannot be imported as Python")
    module = importlib.util.module_from_spec(spec_obj)
    sys.modules[module_name] = module
    # the file's folder is importable, as when Python runs it as a script (`python mymodel.py` puts its folder
    # first on sys.path): `from helpers import block` beside it works. Kept for the session, as for a script:
    # forward() may import lazily.
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        spec_obj.loader.exec_module(module)  # the user's own code, run as they asked
    except SyntaxError as e:  # no frame of the file to show: say where (the model file, or a module it imports)
        if e.filename is None or Path(e.filename).resolve() == path.resolve():
            raise ConfigError(f"--model-file {file}: line {e.lineno}: {e.msg}; your model file is not valid Python"
                              ) from e
        raise ConfigError(f"--model-file {file}: {e.filename}, line {e.lineno} (imported by your model file): "
                          f"{e.msg}; that file is not valid Python") from e
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"--model-file {file}: no nn.Module subclass named {cls_name!r}")
    _check_no_arguments(cls, file)
    model = cls()
    if weights is not None:
        from ..models.weights import CheckpointError, check_finite_state, load_weights

        state = load_weights(weights)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise CheckpointError(f"{weights}: weights do not fit {cls_name}: {e}") from e
        check_finite_state(state, str(weights))
    if next(model.parameters(), None) is None:  # the inspection tools read the model's device from a parameter
        raise ConfigError(f"--model-file {spec}: {cls_name} has no parameters (no trainable layers); the "
                          "inspection tools look inside models with weights, e.g. an nn.Conv2d")
    return model.eval()


def _check_no_arguments(cls: type, file: str) -> None:
    """The class must be callable with no arguments (its weights come from --weights, not the constructor):
    checked against its signature before it runs, naming what it requires."""
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):      # no signature to read (a C type): calling it will tell
        return
    required = [p.name for p in sig.parameters.values()
                if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if required:
        raise ConfigError(f"--model-file {file}: class {cls.__name__} needs argument(s) {', '.join(required)}, but "
                          "convscope builds it with no arguments; give them defaults in __init__, or add a subclass "
                          f"that passes them (class My{cls.__name__}({cls.__name__}): def __init__(self): "
                          "super().__init__(...)) and name that", arg="model_file")


def _norm_values(values: tuple[float, ...] | None, default: float, c: int, flag: str) -> tuple[float, ...]:
    """--mean/--std: one value for every channel, or one per channel."""
    if values is None:
        return (default,) * c
    values = tuple(values)
    if len(values) == 1:
        return values * c
    if len(values) != c:
        raise ConfigError(f"{flag}: {len(values)} values for a model of {c} input channel(s); give one value, "
                          f"or {c} comma-separated", arg=flag.lstrip("-"))
    return values


def from_model_file(spec: str, weights: str | Path | None, input_shape: tuple[int, int, int], dataset: str,
                    out_dir: str | Path, mean: tuple[float, ...] | None = None,
                    std: tuple[float, ...] | None = None, shape_name: str = "input_shape",
                    scores: bool = True) -> Target:
    """A user model as a :class:`Target`, checked here, once, by one forward pass of a zero image of
    ``input_shape`` (``shape_name``: the argument that gave it, for the message), so that a model that does not
    fit is refused before any work. With ``scores`` (for what reads class scores: attribution, predictions)
    the output must also be the classifier contract, (B, classes) floating point; without, any output will do
    (layers, filters, feature maps, receptive fields and top-k look inside feature extractors too)."""
    c = input_shape[0]
    norm = Normalization(_norm_values(mean, 0.0, c, "--mean"), _norm_values(std, 1.0, c, "--std"))
    model = load_model_file(spec, weights)
    if scores:
        classes = output_classes(model, input_shape, f"--model-file {spec}", shape_name)
    else:
        with eval_mode(model), torch.no_grad():
            out = zeros_forward(model, input_shape, shape_name)
        if isinstance(out, torch.Tensor) and out.is_complex():   # the contract's real values, also for features
            raise ConfigError(f"--model-file {spec}: its output is a complex tensor {tuple(out.shape)}; convscope "
                              "reads real-valued scores and activations: return real values (e.g. .abs() or "
                              ".real of the complex result)", arg="model-file")
        classes = int(out.shape[1]) if isinstance(out, torch.Tensor) and out.ndim == 2 else None
    return Target(model, input_shape, norm, None, dataset, Path(out_dir), num_classes=classes)
