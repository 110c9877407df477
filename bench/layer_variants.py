"""Speed round 3 (issue 26): ways to compute fast2's costliest layers, forward + backward, timed side by side.

    python bench/layer_variants.py [--threads 2] [--repeats 40]

Max-pooling 2x2 of the first conv's output (256 x 32 x 28 x 28, bf16, channels-last), as ``F.max_pool2d`` does
it (int64 indices saved for backward) against three formulations that avoid those indices: the maximum over a
reshaped view (``amax``), four strided slices combined by ``torch.maximum``, and a custom autograd function that
saves two boolean masks and writes the gradient into the four strided slices (checked to give the same output
and gradient). And each conv of fast2 in bf16 / fp32, channels-last / channels-first. Times are medians of
``--repeats`` calls after warm-up, in one process; only the ratios within one run compare. Writes
bench/results/layer_variants.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import provenance  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CL = torch.channels_last


def timed(fn, repeats: int) -> float:
    for _ in range(8):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def pool_amax(x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape                                           # channels-last memory: (B, H, W, C)
    y = x.permute(0, 2, 3, 1).reshape(b, h // 2, 2, w // 2, 2, c).amax(dim=(2, 4))
    return y.permute(0, 3, 1, 2)                                   # (B, C, H/2, W/2)


def pool_max4(x: torch.Tensor) -> torch.Tensor:
    return torch.maximum(torch.maximum(x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2]),
                         torch.maximum(x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2]))


class MaskPool(torch.autograd.Function):
    """2x2 max-pool that saves two boolean masks (which row, which column won) instead of int64 indices; ties go
    to the first in scan order, as in max_pool2d."""

    @staticmethod
    def forward(ctx, x):
        a, b, c, d = x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2]
        ab, cd = torch.maximum(a, b), torch.maximum(c, d)
        top = ab >= cd
        left = torch.where(top, a >= b, c >= d)
        ctx.save_for_backward(top, left)
        ctx.shape = x.shape
        return torch.maximum(ab, cd)

    @staticmethod
    def backward(ctx, g):
        top, left = ctx.saved_tensors
        gx = torch.empty(ctx.shape, dtype=g.dtype, memory_format=CL)
        zero = torch.zeros((), dtype=g.dtype)
        gx[:, :, 0::2, 0::2] = torch.where(top & left, g, zero)
        gx[:, :, 0::2, 1::2] = torch.where(top & ~left, g, zero)
        gx[:, :, 1::2, 0::2] = torch.where(~top & left, g, zero)
        gx[:, :, 1::2, 1::2] = torch.where(~top & ~left, g, zero)
        return gx


POOLS = {"F.max_pool2d (int64 indices)": lambda x: F.max_pool2d(x, 2), "amax over a reshaped view": pool_amax,
         "4 strided slices, torch.maximum": pool_max4, "autograd function, 2 boolean masks": MaskPool.apply}
CONVS = [(1, 32, 28), (32, 64, 14), (64, 128, 7), (128, 128, 3)]   # fast2's convs: (in, out, map side)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "layer_variants.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x0 = torch.randn(256, 32, 28, 28).to(torch.bfloat16).contiguous(memory_format=CL)
    g = torch.randn(256, 32, 14, 14).to(torch.bfloat16).contiguous(memory_format=CL)
    ref_x = x0.clone().requires_grad_()
    F.max_pool2d(ref_x, 2).backward(g)
    pools = {}
    for name, fn in POOLS.items():
        x = x0.clone().requires_grad_()
        y = fn(x)
        y.backward(g)
        same = torch.equal(y, F.max_pool2d(x0, 2)) and torch.equal(x.grad, ref_x.grad)

        def step(fn=fn, x=x):
            x.grad = None
            fn(x).backward(g)

        pools[name] = {"ms_forward_backward": round(timed(step, a.repeats), 3), "same_output_and_gradient": same}
        print(f"pool  {name:<40} {pools[name]['ms_forward_backward']:7.2f} ms  same: {same}", flush=True)
    convs = []
    for cin, cout, side in CONVS:
        for dtype in (torch.bfloat16, torch.float32):
            for fmt in ("channels-last", "channels-first"):
                mf = CL if fmt == "channels-last" else torch.contiguous_format
                x = torch.randn(256, cin, side, side).to(dtype).contiguous(memory_format=mf).requires_grad_()
                w = torch.randn(cout, cin, 3, 3, requires_grad=True)
                gy = torch.randn(256, cout, side, side).to(dtype).contiguous(memory_format=mf)

                def step(x=x, w=w, gy=gy, dtype=dtype):
                    x.grad = w.grad = None
                    F.conv2d(x, w.to(dtype), padding=1).backward(gy)

                ms = timed(step, a.repeats)
                convs.append({"conv": f"{cin}->{cout} on {side}x{side}", "dtype": str(dtype).removeprefix("torch."),
                              "format": fmt, "ms_forward_backward": round(ms, 3)})
                print(f"conv  {convs[-1]['conv']:<18} {convs[-1]['dtype']:<9} {fmt:<15} {ms:7.2f} ms", flush=True)
    out = {"benchmark": "layer_variants", "provenance": provenance(), "threads": a.threads, "repeats": a.repeats,
           "batch": 256, "pool_input": [256, 32, 28, 28], "pools": pools, "convs": convs}
    from convscope._atomic import atomic_write_text

    atomic_write_text(a.out, json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
