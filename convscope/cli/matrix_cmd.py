"""``convscope matrix``: a conv layer as its explicit matrix — printed, drawn, its spectrum measured."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError


def _hw(text: str, name: str) -> tuple[int, int]:
    parts = text.lower().replace(",", "x").split("x")
    try:
        vals = [int(p) for p in parts]
    except ValueError:
        raise ConfigError(f"{name} {text!r}: expected N or HxW, e.g. 3 or 3x3") from None
    if len(vals) == 1:
        return vals[0], vals[0]
    if len(vals) == 2:
        return vals[0], vals[1]
    raise ConfigError(f"{name} {text!r}: expected N or HxW")


def _padding(text: str):
    if text in ("same", "valid"):
        return text
    parts = text.replace("x", ",").split(",")
    try:
        vals = [int(p) for p in parts]
    except ValueError:
        raise ConfigError(f"--padding {text!r}: expected N, HxW, L,R,T,B, same or valid") from None
    if len(vals) == 1:
        return vals[0]
    if len(vals) in (2, 4):
        return tuple(vals)
    raise ConfigError(f"--padding {text!r}: expected N, HxW, L,R,T,B, same or valid")


def _channels(text: str) -> tuple[int, int]:
    try:
        a, b = text.split(":")
        return int(a), int(b)
    except ValueError:
        raise ConfigError(f"--channels {text!r}: expected IN:OUT, e.g. 3:8") from None


def _layer_from_run(args) -> tuple[nn.Conv2d, tuple[int, int, int], str]:
    from ..training import load_run

    run = load_run(args.run)
    convs = {n: m for n, m in run.model.named_modules() if isinstance(m, nn.Conv2d)}
    if args.layer not in convs:
        raise ConfigError(f"--layer {args.layer!r}: not a conv layer of {args.run}; valid: {', '.join(convs) or 'none'}")
    shapes: dict[str, tuple[int, ...]] = {}

    def record(module, inputs, output) -> None:  # observe only: a hook that returns a value replaces the output
        shapes["in"] = tuple(inputs[0].shape[1:])

    hook = convs[args.layer].register_forward_hook(record)
    try:
        with torch.no_grad():
            run.model(torch.zeros(1, *run.input_shape))
    finally:
        hook.remove()
    return convs[args.layer], shapes["in"], f"{args.run}:{args.layer}"


def cmd_matrix(args: argparse.Namespace) -> int:
    from ..matrix import conv_matrix, make_geometry
    from ..matrix.display import block_structure, format_symbolic, heatmap_png, spectrum_png, symbolic_entries

    if args.run is not None and args.lipschitz:
        return _lipschitz(args)
    if args.run is not None:
        if not args.layer:
            raise ConfigError("give --layer NAME (a conv layer of the run) or --lipschitz")
        layer, in_shape, label = _layer_from_run(args)
        weight = layer.weight.detach().double()
        conv = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
                    padding_mode=layer.padding_mode)
        symbolic = False
    else:
        if not args.input or not args.kernel:
            raise ConfigError("give --input HxW and --kernel KxK (or a RUN with --layer)")
        h, w = _hw(args.input, "--input")
        kh, kw = _hw(args.kernel, "--kernel")
        c_in, c_out = _channels(args.channels)
        if args.groups < 1 or c_in % args.groups:
            raise ConfigError(f"--groups {args.groups}: must divide the input channels {c_in}")
        in_shape = (c_in, h, w)
        weight = torch.from_numpy(np.random.default_rng(args.seed).standard_normal((c_out, c_in // args.groups, kh, kw)))
        conv = dict(stride=_hw(args.stride, "--stride"), padding=_padding(args.padding),
                    dilation=_hw(args.dilation, "--dilation"), groups=args.groups, padding_mode=args.padding_mode)
        label = f"{kh}x{kw} kernel on {c_in}x{h}x{w}"
        symbolic = True
    geom = make_geometry(tuple(weight.shape), in_shape, **conv)
    m = conv_matrix(weight, in_shape, **conv, max_memory=int(args.max_memory * 2**30))
    rows, cols = m.shape
    info = {"layer": label, "input_shape": list(geom.input_shape), "output_shape": list(geom.output_shape),
            "shape": [rows, cols], "nonzeros": int(m.nnz), "density": m.nnz / (rows * cols),
            "stride": list(geom.stride), "dilation": list(geom.dilation), "padding": list(geom.pad),
            "padding_order": "top, bottom, left, right", "groups": geom.groups, "padding_mode": geom.padding_mode,
            "structure": block_structure(geom)}
    text = format_symbolic(geom) if symbolic else None
    if text is not None:
        info["entries"] = {f"{r},{c}": v for (r, c), v in sorted(symbolic_entries(geom).items())}
    if args.svd:
        info["spectrum"] = _spectrum(weight, in_shape, conv, geom, args, label, spectrum_png)
    if args.png:
        heatmap_png(m, args.png, f"{label}: {rows:,} x {cols:,}, {m.nnz:,} non-zeros")
        info["png"] = str(args.png)
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        print()
        return 0
    print(f"{label}: input {geom.input_shape} -> output {geom.output_shape}")
    print(f"matrix {rows:,} x {cols:,}, {m.nnz:,} non-zeros, density {info['density']:.4g}")
    print(f"structure: {info['structure']}")
    if text is not None:
        print("\nrows = outputs, columns = inputs, both in (C, H, W) order" +
              ("" if geom.out_channels * geom.in_channels == 1 else "; wA.B:ij = weight[A-1, B-1, i-1, j-1]"))
        print(text)
    elif symbolic:
        print("(too large to print; use --png or --json)")
    if args.svd:
        s = info["spectrum"]
        print(f"\nsingular values ({s['method']}): largest {s['largest']:.6g}, smallest {s['smallest']:.6g}, "
              f"condition number {s['condition_number']:.6g}" if "largest" in s else
              f"\nspectral norm in [{s['lower']:.6g}, {s['upper']:.6g}] ({s['method']})")
        if s.get("png"):
            print(f"wrote {s['png']}")
    if args.png:
        print(f"wrote {args.png}")
    return 0


def _spectrum(weight, in_shape, conv, geom, args, label, spectrum_png) -> dict:
    from ..matrix.spectrum import circular_singular_values, dense_singular_values, spectral_norm_interval

    rows, cols = geom.shape
    sv, method = None, None
    t, b, l, r = geom.pad
    if geom.padding_mode == "circular":
        try:
            sv = circular_singular_values(weight, in_shape, conv["stride"], conv["padding"], conv["dilation"],
                                          conv["groups"])
            method = "exact, FFT + per-frequency SVD"
        except ConfigError:
            sv = None
    if sv is None and rows * cols <= 25_000_000:
        sv, method = dense_singular_values(weight, in_shape, **conv), "exact, dense SVD"
    out: dict = {"method": method}
    if sv is not None:
        pos = sv[sv > sv[0] * 1e-12]
        out.update(largest=float(sv[0]), smallest=float(sv[-1]),
                   condition_number=float(sv[0] / pos[-1]) if len(pos) else float("inf"), count=int(len(sv)))
        if args.svd_png:
            png = args.svd_png
        elif args.png:
            png = args.png.with_name(args.png.stem + "-spectrum.png")
        elif args.run is not None:  # beside the run's other inspection pictures
            png = args.run / "inspect" / f"matrix-{args.layer}-spectrum.png"
        else:
            png = Path("conv-spectrum.png")
        spectrum_png(sv, png, label)
        out["png"] = str(png)
    else:
        iv = spectral_norm_interval(weight, in_shape, **conv)
        out.update(method="power iteration (lower) and Gram iteration (upper)", lower=iv.lower, upper=iv.upper,
                   iterations=iv.iterations, converged=iv.converged)
    return out


def _lipschitz(args) -> int:
    from ..matrix.spectrum import lipschitz_bound
    from ..training import load_run

    run = load_run(args.run)
    model = run.model.double()
    layers, total = lipschitz_bound(model, run.input_shape)
    width = max(len(b.name) for b in layers)
    print(f"{'layer':<{width}}  {'type':<18} {'input':<14} {'lower':>10} {'upper':>10}")
    for b in layers:
        print(f"{b.name:<{width}}  {b.kind:<18} {'x'.join(map(str, b.input_shape)):<14} {b.lower:>10.4g} {b.upper:>10.4g}")
    print(f"\nLipschitz upper bound of the network (L2, eval mode, product of layer bounds): {total:.6g}")
    print("(the normalization of the input adds a factor 1/min(std) per unit of pixel value)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("matrix", help="a conv layer as its explicit sparse matrix: print, draw, spectrum",
                       description="Convolution as a matrix on the unrolled input. Example: "
                                   "convscope matrix --input 4x4 --kernel 3x3")
    p.add_argument("run", nargs="?", type=Path, help="a run directory (with --layer or --lipschitz)")
    p.add_argument("--input", help="input size HxW, e.g. 4x4")
    p.add_argument("--kernel", help="kernel size KxK, e.g. 3x3")
    p.add_argument("--stride", default="1", help="N or HxW (default 1)")
    p.add_argument("--padding", default="0", help="N, HxW, L,R,T,B, same or valid (default 0)")
    p.add_argument("--dilation", default="1", help="N or HxW (default 1)")
    p.add_argument("--channels", default="1:1", help="IN:OUT channels (default 1:1)")
    p.add_argument("--groups", type=int, default=1)
    p.add_argument("--padding-mode", default="zeros", choices=["zeros", "circular", "reflect", "replicate"])
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights used for numbers (default 0)")
    p.add_argument("--layer", help="with RUN: the conv layer's name (named_modules)")
    p.add_argument("--lipschitz", action="store_true", help="with RUN: every layer's norm interval and the bound")
    p.add_argument("--png", type=Path, help="write a heatmap of the matrix")
    p.add_argument("--svd", action="store_true", help="singular values: summary and a plot")
    p.add_argument("--svd-png", type=Path, help="where the spectrum plot goes (default beside --png)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--max-memory", type=float, default=4.0, help="refuse matrices needing more GiB (default 4)")
    p.set_defaults(func=cmd_matrix)
