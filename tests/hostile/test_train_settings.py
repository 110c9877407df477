"""Classes 4, 5 and 6 of issue 28: training settings that cannot make sense, config files with a key given twice,
seeds out of range, and ``--nproc`` combinations the workers would refuse: each refused before anything runs,
naming the setting (valid configs are untouched: their digests are tested in tests/training)."""

from __future__ import annotations

import pytest
import torch

from convscope._check import SEED_MAX, seed
from convscope.errors import ConfigError
from convscope.training.config import config_from_dict, read_config_file

from .conftest import refused


@pytest.mark.parametrize("values, words", [
    ({"warmup_epochs": 50, "epochs": 1}, "warmup_epochs 50 is not shorter than the run (1 epochs)"),
    ({"warmup_epochs": 3, "epochs": 3}, "warmup_epochs 3 is not shorter"),
    ({"momentum": 2}, "momentum must lie in [0, 1), got 2"),
    ({"momentum": 1.0}, "momentum must lie in [0, 1)"),
    ({"momentum": -0.1}, "momentum must lie in [0, 1)"),
])
def test_meaningless_settings_are_refused(values, words):
    with pytest.raises(ConfigError) as info:
        config_from_dict(values)
    assert words in str(info.value)


def test_short_warmup_and_top_of_range_momentum_still_pass():
    cfg = config_from_dict({"warmup_epochs": 0.5, "epochs": 1, "momentum": 0.99})
    assert cfg.schedule.warmup_epochs == 0.5 and cfg.optim.momentum == 0.99


@pytest.mark.parametrize("name, text", [
    ("a.yaml", "lr: 0.1\nepochs: 1\nlr: 0.5\n"),
    ("b.yml", "optim:\n  lr: 0.1\n  lr: 0.2\n"),
    ("c.json", '{"epochs": 1, "epochs": 2}'),
    ("d.json", '{"optim": {"lr": 0.1, "lr": 0.2}}'),
])
def test_a_key_given_twice_in_a_config_file_is_refused(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        read_config_file(path)
    msg = str(info.value)
    assert str(path) in msg and "given twice" in msg and ("'lr'" in msg or "'epochs'" in msg)


@pytest.mark.parametrize("value", [10**23, -1, SEED_MAX + 1, 2**64, True, 1e23, 3.0])
def test_seeds_out_of_range_are_refused_by_the_shared_check(value):
    with pytest.raises(ConfigError, match="seed"):
        seed(value)
    with pytest.raises(ConfigError, match="seed"):
        config_from_dict({"seed": value})


def test_the_largest_seed_is_accepted_everywhere():
    from convscope.configs import RefineConfig, VisualizeConfig
    from convscope.training.batches import epoch_order

    assert seed(SEED_MAX) == SEED_MAX and config_from_dict({"seed": SEED_MAX}).runtime.seed == SEED_MAX
    assert VisualizeConfig(seed=SEED_MAX).seed == SEED_MAX and RefineConfig(seeds=(SEED_MAX,)).seeds == (SEED_MAX,)
    with pytest.raises(ConfigError):
        VisualizeConfig(seed=SEED_MAX + 1)
    # the per-epoch order of the largest seed (seed * 1,000,003 once overflowed torch's 64-bit seed) ...
    order = epoch_order(10, SEED_MAX, 3, torch.device("cpu"))
    assert sorted(order.tolist()) == list(range(10))
    # ... and of small seeds is what it always was (valid runs stay bit-identical)
    g = torch.Generator().manual_seed(7 * 1_000_003 + 2)
    assert torch.equal(epoch_order(10, 7, 2, torch.device("cpu")), torch.randperm(10, generator=g))


def test_seed_in_a_yaml_config_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 100000000000000000000000\n")
    with pytest.raises(ConfigError, match="seed"):
        config_from_dict(read_config_file(path), source=str(path))


def test_nproc_with_the_numpy_engine_is_refused_before_any_process_starts(tmp_path, cli):
    r = cli("train", "--nproc", "2", "--engine", "numpy", "--epochs", "1", "--out", tmp_path / "run")
    refused(r, "several processes (2) need the torch engine", "--engine torch")
    assert r.stderr.count("convscope: error:") == 1 and "torchrun" not in r.stderr
    assert not (tmp_path / "run").exists()
