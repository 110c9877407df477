"""Fashion-MNIST as Debian's dataset-fashion-mnist installs it (.ci/run installs the package)."""

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from convscope.data import load
from convscope.data.sources import FASHION_MNIST
from convscope.errors import ChecksumError

SYSTEM = Path("/usr/share/datasets/fashion-mnist")
# Zalando's published MD5s of the .gz files, and of their content (gunzipped)
PUBLISHED_GZ = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
PUBLISHED_RAW = {
    "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def test_published_checksums_are_the_ones_we_verify_against():
    assert {f.name: f.md5 for f in FASHION_MNIST.files} == PUBLISHED_GZ
    assert {f.name: f.raw_md5 for f in FASHION_MNIST.files} == PUBLISHED_RAW


@pytest.mark.parametrize("name", sorted(PUBLISHED_GZ))
def test_system_files_match_the_published_md5(name):
    data = (SYSTEM / name).read_bytes()
    # Debian recompressed the archives, so the .gz bytes may differ; the images inside must not
    if hashlib.md5(data).hexdigest() != PUBLISHED_GZ[name]:
        assert hashlib.md5(gzip.decompress(data)).hexdigest() == PUBLISHED_RAW[name]


def test_loads_full_splits_with_published_names():
    train, test = load("fashion-mnist", "train"), load("fashion-mnist", "test")
    assert len(train) == 60_000 and len(test) == 10_000
    assert train.images.shape[1:] == (1, 28, 28) and test.images.shape[1:] == (1, 28, 28)
    assert train.classes == CLASSES and train.hflip_ok
    assert train.class_counts() == [6000] * 10 and test.class_counts() == [1000] * 10
    assert train.source.startswith(str(SYSTEM))


def test_explicit_root_wins_and_a_corrupt_copy_is_refused(tmp_path):
    # a copy in root takes precedence over the system install, and is verified
    for name in PUBLISHED_GZ:
        (tmp_path / name).write_bytes((SYSTEM / name).read_bytes())
    ds = load("fashion-mnist", "test", root=tmp_path, download=False)
    assert ds.source == str(tmp_path / "t10k-images-idx3-ubyte.gz")
    raw = bytearray(gzip.decompress((SYSTEM / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    raw[100] = (raw[100] + 1) % 10  # one label changed: still a valid IDX file, but not the published one
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(bytes(raw))
    with pytest.raises(ChecksumError) as e:
        load("fashion-mnist", "test", root=tmp_path, download=False)
    assert str(tmp_path / "t10k-labels-idx1-ubyte") in str(e.value)
    np.testing.assert_array_equal(ds.labels.numpy()[:100], load("fashion-mnist", "test").labels.numpy()[:100])
