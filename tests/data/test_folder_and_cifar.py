import io
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from convscope.data import FolderOptions, load
from convscope.data import cifar
from convscope.errors import DataError


def _png(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


@pytest.fixture
def gray_folder(tmp_path):
    rng = np.random.default_rng(0)
    pixels = {}
    for cls in ("cat", "dog"):
        for i in range(5):
            a = rng.integers(0, 256, size=(6, 7), dtype=np.uint8)
            _png(tmp_path / "pets" / cls / f"{i}.png", a)
            pixels[(cls, i)] = a
    (tmp_path / "pets" / "cat" / ".DS_Store").write_bytes(b"junk")  # hidden files are ignored
    return tmp_path / "pets", pixels


def test_folder_reads_exact_pixels(gray_folder):
    root, pixels = gray_folder
    ds = load(f"folder:{root}", "all")
    assert ds.classes == ("cat", "dog") and len(ds) == 10 and ds.shape == (1, 6, 7)
    np.testing.assert_array_equal(ds.images[0, 0].numpy(), pixels[("cat", 0)])
    np.testing.assert_array_equal(ds.images[9, 0].numpy(), pixels[("dog", 4)])
    assert ds.labels.tolist() == [0] * 5 + [1] * 5


def test_folder_split_is_stratified(gray_folder):
    root, _ = gray_folder
    train, test = load(f"folder:{root}", "train"), load(f"folder:{root}", "test")
    assert test.class_counts() == [1, 1] and train.class_counts() == [4, 4]


def test_folder_with_train_and_test_subfolders(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("a", "b"):
            for i in range(n):
                _png(tmp_path / split / cls / f"{i}.png", np.full((4, 4, 3), 40 * i, np.uint8))
    ds = load(f"folder:{tmp_path}", "test")
    assert len(ds) == 4 and ds.shape == (3, 4, 4)


def test_resize_policies(tmp_path):
    _png(tmp_path / "a" / "big.png", np.full((8, 16), 200, np.uint8))
    _png(tmp_path / "a" / "small.png", np.full((4, 4), 100, np.uint8))
    with pytest.raises(DataError) as e:
        load(f"folder:{tmp_path}", "all", folder_options=FolderOptions(size=(4, 4)))
    assert "big.png" in str(e.value) and "resize" in str(e.value)
    fit = load(f"folder:{tmp_path}", "all", folder_options=FolderOptions(size=(4, 4), resize="fit"))
    big = fit.images[0, 0].numpy()  # 8x16 scaled to 2x4, padded top and bottom with black
    assert big[0].tolist() == [0] * 4 and big[1:3].min() == 200 and big[3].tolist() == [0] * 4
    crop = load(f"folder:{tmp_path}", "all", folder_options=FolderOptions(size=(4, 4), resize="crop"))
    assert (crop.images[0] == 200).all()
    stretch = load(f"folder:{tmp_path}", "all", folder_options=FolderOptions(size=(4, 4), resize="stretch"))
    assert (stretch.images[0] == 200).all() and stretch.shape == (1, 4, 4)


def test_mixed_modes_become_rgb(tmp_path):
    _png(tmp_path / "a" / "g.png", np.full((4, 4), 9, np.uint8))
    _png(tmp_path / "b" / "c.png", np.zeros((4, 4, 3), np.uint8))
    ds = load(f"folder:{tmp_path}", "all")
    assert ds.shape == (3, 4, 4) and (ds.images[0] == 9).all()


@pytest.mark.parametrize("case", ["empty", "not-image", "text-suffix", "truncated"])
def test_bad_files_are_named(tmp_path, case):
    _png(tmp_path / "a" / "ok.png", np.zeros((4, 4), np.uint8))
    bad = tmp_path / "a" / ("notes.txt" if case == "text-suffix" else "bad.png")
    if case == "empty":
        bad.write_bytes(b"")
    elif case == "not-image":
        bad.write_bytes(b"this is not a PNG at all")
    elif case == "text-suffix":
        bad.write_text("hello")
    else:
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(buf, "PNG")
        bad.write_bytes(buf.getvalue()[:300])
    with pytest.raises(DataError) as e:
        load(f"folder:{tmp_path}", "all")
    assert str(bad) in str(e.value)


def test_decompression_bomb_refused(tmp_path):
    # 20,000 x 20,000 one-bit pixels: ~60 KB on disk, 400 million pixels once decoded
    _png(tmp_path / "a" / "ok.png", np.zeros((4, 4), np.uint8))
    Image.new("1", (20_000, 20_000)).save(tmp_path / "a" / "bomb.png")
    with pytest.raises(DataError) as e:
        load(f"folder:{tmp_path}", "all")
    assert "bomb.png" in str(e.value)
    # our own, lower limit is honoured too
    Image.new("L", (100, 100)).save(tmp_path / "a" / "bomb.png")
    with pytest.raises(DataError, match="max_pixels"):
        load(f"folder:{tmp_path}", "all", folder_options=FolderOptions(max_pixels=5000))


def test_symlink_escaping_root_refused(tmp_path):
    outside = tmp_path / "outside.png"
    _png(outside, np.zeros((4, 4), np.uint8))
    root = tmp_path / "ds"
    _png(root / "a" / "ok.png", np.zeros((4, 4), np.uint8))
    os.symlink(outside, root / "a" / "link.png")
    with pytest.raises(DataError, match="outside the dataset folder") as e:
        load(f"folder:{root}", "all")
    assert str(root / "a" / "link.png") in str(e.value)


def test_symlink_inside_root_is_fine(tmp_path):
    _png(tmp_path / "a" / "ok.png", np.zeros((4, 4), np.uint8))
    os.symlink(tmp_path / "a" / "ok.png", tmp_path / "a" / "again.png")
    assert len(load(f"folder:{tmp_path}", "all")) == 2


@pytest.mark.parametrize("layout", ["missing", "file", "no-classes", "no-images"])
def test_unusable_folders(tmp_path, layout):
    target = tmp_path / "ds"
    if layout == "file":
        target.write_text("x")
    elif layout == "no-classes":
        target.mkdir()
    elif layout == "no-images":
        (target / "a").mkdir(parents=True)
    with pytest.raises(DataError) as e:
        load(f"folder:{target}", "all")
    assert str(target) in str(e.value)


# ---- CIFAR-10 binary format, with files the test generates -------------------------------------------------

def _cifar_batch(rng, n):
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    pixels = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    rec = np.concatenate([labels[:, None], pixels.reshape(n, -1)], axis=1)
    return rec.tobytes(), pixels, labels


def test_cifar_records_decode_exactly():
    data, pixels, labels = _cifar_batch(np.random.default_rng(0), 10_000)
    images, labs = cifar.parse_records(data, "batch")
    np.testing.assert_array_equal(images, pixels)
    np.testing.assert_array_equal(labs, labels)
    # channel planes are R, G, B in that order: record byte 1 is the red value of the top-left pixel
    assert images[0, 0, 0, 0] == data[1] and images[0, 1, 0, 0] == data[1 + 1024]


def test_cifar_archive_read_without_extracting(tmp_path):
    rng = np.random.default_rng(1)
    archive = tmp_path / "cifar-10-binary.tar.gz"
    expected = {}
    with tarfile.open(archive, "w:gz") as tar:
        for name in cifar.TRAIN_FILES + cifar.TEST_FILES:
            data, pixels, labels = _cifar_batch(rng, 10_000)
            expected[name] = (pixels, labels)
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    images, labels = cifar.read_cifar_archive(archive, "test")
    np.testing.assert_array_equal(images, expected["test_batch.bin"][0])
    images, labels = cifar.read_cifar_archive(archive, "train")
    assert images.shape == (50_000, 3, 32, 32)
    np.testing.assert_array_equal(labels[10_000:20_000], expected["data_batch_2.bin"][1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-binary.tar.gz"]  # nothing extracted


def test_cifar_unpacked_folder_through_load(tmp_path):
    rng = np.random.default_rng(2)
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for name in cifar.TEST_FILES:
        data, pixels, labels = _cifar_batch(rng, 10_000)
        (folder / name).write_bytes(data)
    ds = load("cifar10", "test", root=tmp_path, download=False)
    assert len(ds) == 10_000 and ds.shape == (3, 32, 32) and ds.hflip_ok
    np.testing.assert_array_equal(ds.images.numpy(), pixels)
    with pytest.raises(DataError, match="data_batch_1.bin"):
        load("cifar10", "train", root=tmp_path, download=False)


def test_cifar_truncated_batch_named(tmp_path):
    data, _, _ = _cifar_batch(np.random.default_rng(3), 10_000)
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    (folder / "test_batch.bin").write_bytes(data[:-100])
    with pytest.raises(DataError) as e:
        load("cifar10", "test", root=tmp_path, download=False)
    assert str(folder / "test_batch.bin") in str(e.value) and "3073" in str(e.value)


def test_cifar_archive_with_wrong_checksum_refused(tmp_path):
    from convscope.errors import ChecksumError

    archive = tmp_path / "cifar10" / "cifar-10-binary.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz"):
        pass
    with pytest.raises(ChecksumError) as e:
        load("cifar10", "test", root=tmp_path, download=False)
    assert str(archive) in str(e.value)


def test_unknown_names_and_splits():
    with pytest.raises(DataError, match="unknown dataset 'imagenet'.*digits"):
        load("imagenet")
    with pytest.raises(DataError, match="unknown split 'val'"):
        load("digits", "val")
    with pytest.raises(DataError, match="unknown split 'all'"):
        load("fashion-mnist", "all")
