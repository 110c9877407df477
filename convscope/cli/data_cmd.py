"""``convscope data list`` and ``convscope data show NAME``."""

from __future__ import annotations

import argparse
from pathlib import Path

from typing import TYPE_CHECKING

from ..errors import ConfigError
from ._types import count

if TYPE_CHECKING:
    from ..data.folder import FolderOptions


def add_data_args(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that reads a dataset."""
    p.add_argument("--data-dir", type=Path, default=None,
                   help="folder searched first for dataset files (and where downloads go)")
    p.add_argument("--no-download", action="store_true", help="never use the network")
    p.add_argument("--resize", choices=["error", "stretch", "fit", "crop"], default="error",
                   help="folder datasets: what to do with images of another size (default: error)")
    p.add_argument("--size", type=str, default=None, help="folder datasets: target size HxW, e.g. 28x28")


def folder_options(args: argparse.Namespace) -> FolderOptions:
    from ..data.folder import FolderOptions

    size = None
    if args.size:
        try:
            h, w = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            raise ConfigError(f"--size {args.size!r}: expected HxW such as 28x28") from None
        size = (h, w)
    return FolderOptions(size=size, resize=args.resize)


def load_from_args(args: argparse.Namespace, name: str, split: str, shape: tuple[int, ...] | None = None):
    """The dataset the flags name; with ``shape`` (a model's (C, H, W)), refused unless its images have it."""
    from ..data import load

    ds = load(name, split, args.data_dir, download=not args.no_download, folder_options=folder_options(args))
    if shape is not None and tuple(ds.shape) != tuple(shape):
        hint = ""
        if name.startswith("folder:") and ds.shape[0] != shape[0]:
            hint = f"; convert its images with folder:PATH?channels={shape[0]}"
        elif name.startswith("folder:"):
            hint = (f"; resize its images with --resize fit --size {shape[1]}x{shape[2]} (or "
                    f"folder:PATH?resize=fit&size={shape[1]}x{shape[2]})")
        raise ConfigError(f"--dataset {name}: images are {tuple(ds.shape)}, the model takes {tuple(shape)}{hint}")
    return ds


def cmd_list(args: argparse.Namespace) -> int:
    from ..data import DATASETS, availability

    rows = [(name, *availability(name, args.data_dir), info.description) for name, info in DATASETS.items()]
    width = max(len(r[0]) for r in rows)
    print(f"{'name':<{width}}  {'here':<4}  where / description")
    for name, ok, where, desc in rows:
        print(f"{name:<{width}}  {'yes' if ok else 'no':<4}  {where}\n{'':<{width}}        {desc}")
    print(f"{'folder:PATH':<{width}}  {'-':<4}  your images: PATH/<class>/*.png|jpg")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from ..viz import class_grid

    from .._check import output_file

    out = args.out or Path(f"{args.name.replace(':', '_').replace('/', '_')}-{args.split}-samples.png")
    output_file(out, "--out", "data show")   # before loading: a run's file or a user's picture is never replaced
    ds = load_from_args(args, args.name, args.split)
    class_grid(ds, out, per_class=args.per_class, output="data show")
    print(f"{ds!r}\nclass counts: {ds.class_counts()}\nwrote {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="list datasets, or draw samples of one",
                       description="List the datasets and where they are found, or draw a grid of samples.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    pl = dsub.add_parser("list", help="every dataset, whether it is available here, and where")
    pl.add_argument("--data-dir", type=Path, default=None, help="folder searched first")
    pl.set_defaults(func=cmd_list, torch_free=True)
    ps = dsub.add_parser("show", help="write a PNG grid of samples, one row per class")
    ps.add_argument("name", help="digits, mnist, fashion-mnist, cifar10 or folder:PATH")
    ps.add_argument("--split", default="train", help="train (default), test, or all (digits/folder)")
    ps.add_argument("--per-class", type=count(1), default=8, help="samples per class (default 8)")
    ps.add_argument("--out", type=Path, default=None, help="PNG file to write (default NAME-SPLIT-samples.png)")
    add_data_args(ps)
    ps.set_defaults(func=cmd_show, output_set=True, torch_free=True)
