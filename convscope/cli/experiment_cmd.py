"""``convscope experiment refine RUN --layer NAME``: refine kernels on their top images, measure overfitting."""

from __future__ import annotations

import argparse
from pathlib import Path

from .._atomic import writable_folder
from ..configs import RefineConfig
from ..errors import ConfigError
from ._options import add_options, add_quiet, config_from_args


def cmd_refine(args: argparse.Namespace) -> int:
    from ..experiments import refine
    from ..experiments.pictures import save_refine

    cfg = config_from_args(RefineConfig, args)
    runs = list(args.run or [])
    args.run = runs[0] if runs else None             # the first run: where the results go by default
    if runs and args.model_file:
        raise ConfigError("give a RUN or --model-file, not both")
    if args.out is not None:
        writable_folder(args.out, f"--out {args.out}")
    elif args.run is not None and Path(args.run).is_dir():
        writable_folder(Path(args.run) / "experiments", f"RUN {args.run}")      # the default output lies under the run
    kwargs = {}
    if args.model_file:
        from ..data import load
        from ..inspect.target import from_model_file
        from .inspect_cmd import _floats

        if args.out is None:
            raise ConfigError("--model-file: give --out FOLDER for the results")
        mean, std = _floats(args.mean, "--mean"), _floats(args.std, "--std", positive=True)  # before loading data
        name = args.dataset or "digits"
        train, test = load(name, "train", args.data_dir), load(name, "test", args.data_dir)
        t = from_model_file(args.model_file, args.weights, train.shape, name, args.out, mean, std)
        target, kwargs = t.model, {"train": train, "test": test, "normalization": t.normalization}
    elif args.run is not None:
        from .inspect_cmd import refuse_model_file_flags

        refuse_model_file_flags(args)
        target = runs if len(runs) > 1 else args.run     # several runs: independently trained models of one recipe
    else:
        raise ConfigError("give a run directory, or --model-file path.py:ClassName --weights file.safetensors")
    res = refine(target, cfg, **kwargs)   # progress: stage lines on stderr (convscope/_progress.py)
    print(res.table())
    out = args.out or Path(args.run) / "experiments" / f"refine-{res.layer.replace('/', '_')}"
    paths = save_refine(res, out)
    print(f"{res.seconds:.0f} s; wrote " + ", ".join(str(p) for p in paths))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="experiments that combine training and inspection (refine)")
    esub = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    r = esub.add_parser("refine", help="refine a layer's kernels on their top images; does it cost generalisation?",
                        description="From the same trained weights, over several seeds: gradient ascent of each "
                        "kernel's response on its top-k training images (norms fixed), fine-tuning on those images, "
                        "on as many random or representative images, and on the full data. Writes "
                        "RUN/experiments/refine-LAYER/{results.json,curves.png,per-class.png,kernels.png}.")
    r.add_argument("run", nargs="*", type=Path, help="run directories: one, or several independently trained "
                   "models of one recipe (or use --model-file)")
    r.add_argument("--model-file", help="your model: path.py:ClassName (instantiated with no arguments)")
    r.add_argument("--weights", type=Path, help="safetensors weights for --model-file")
    r.add_argument("--mean", help="--model-file normalization: per-channel mean on the 0..1 scale")
    r.add_argument("--std", help="--model-file normalization: per-channel std")
    r.add_argument("--dataset", help="--model-file: its dataset (default digits); runs use their own")
    r.add_argument("--data-dir", type=Path, default=None, help="folder searched first for dataset files")
    add_options(r, RefineConfig)
    r.add_argument("--out", type=Path, help="output folder (default RUN/experiments/refine-LAYER)")
    add_quiet(r)
    r.set_defaults(func=cmd_refine)
