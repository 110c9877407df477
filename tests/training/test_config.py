import pytest

from convscope.cli import build_parser
from convscope.cli.train_cmd import config_from_args
from convscope.errors import ConfigError
from convscope.training.config import FIELDS, RECIPES, TrainConfig, config_from_dict, read_config_file, recipe


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as e:
        config_from_dict({"learning_rate": 0.1})
    msg = str(e.value)
    assert "learning_rate" in msg and all(k in msg for k in FIELDS)


@pytest.mark.parametrize("values", [{"lr": "fast"}, {"epochs": 2.5}, {"epochs": True}, {"nesterov": 1},
                                    {"model_args": [1]}, {"threads": "2"}])
def test_wrong_types_rejected(values):
    key = next(iter(values))
    with pytest.raises(ConfigError, match=f"{key} = .* wrong type.*valid keys"):
        config_from_dict(values)


def test_int_accepted_where_float_expected():
    cfg = config_from_dict({"lr": 1, "grad_clip": 2})
    assert isinstance(cfg.lr, float) and cfg.lr == 1.0 and cfg.grad_clip == 2.0


@pytest.mark.parametrize("values, fragment", [
    ({"optimizer": "lbfgs"}, "optimizer"), ({"schedule": "cyclic"}, "schedule"), ({"epochs": 0}, "epochs"),
    ({"label_smoothing": 1.0}, "label_smoothing"), ({"early_stopping": 3}, "val_fraction"),
    ({"lr": -1.0}, "lr"), ({"grad_clip": 0.0}, "grad_clip")])
def test_invalid_values_rejected(values, fragment):
    with pytest.raises(ConfigError, match=fragment):
        config_from_dict(values)


def test_recipes_are_valid_and_match_their_sources():
    for name in RECIPES:
        recipe(name)
    pt = recipe("pytorch-example")
    assert (pt.optimizer, pt.lr, pt.schedule.name, pt.step_gamma, pt.batch_size, pt.epochs) == (
        "adadelta", 1.0, "step", 0.7, 64, 14)
    ke = recipe("keras-example")
    assert (ke.optimizer, ke.batch_size, ke.epochs, ke.val_fraction) == ("adam", 128, 15, 0.1)
    assert recipe("fast") == TrainConfig()


def test_yaml_and_toml_files(tmp_path):
    (tmp_path / "a.yaml").write_text("epochs: 3\nlr: 0.05\nmodel_args: {width: 16}\n")
    (tmp_path / "a.toml").write_text('epochs = 3\nlr = 0.05\n[model_args]\nwidth = 16\n')
    for name in ("a.yaml", "a.toml"):
        cfg = config_from_dict(read_config_file(tmp_path / name))
        assert (cfg.epochs, cfg.lr, cfg.model_args) == (3, 0.05, {"width": 16})


def test_bad_files_name_the_file(tmp_path):
    (tmp_path / "bad.yaml").write_text("epochs: [1,\n")
    with pytest.raises(ConfigError, match="bad.yaml: malformed YAML"):
        read_config_file(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="list.yaml: the top level must be a mapping"):
        read_config_file(tmp_path / "list.yaml")
    (tmp_path / "x.ini").write_text("[a]\n")
    with pytest.raises(ConfigError, match="x.ini: unknown config format"):
        read_config_file(tmp_path / "x.ini")
    with pytest.raises(ConfigError, match="missing.yaml: cannot read"):
        read_config_file(tmp_path / "missing.yaml")
    (tmp_path / "typo.toml").write_text("epoch = 3\n")
    with pytest.raises(ConfigError, match="typo.toml: unknown key.*epoch.*valid keys"):
        config_from_dict(read_config_file(tmp_path / "typo.toml"), source=str(tmp_path / "typo.toml"))


def test_flags_override_file_which_overrides_recipe(tmp_path):
    (tmp_path / "c.yaml").write_text("epochs: 7\nbatch_size: 32\n")
    args = build_parser().parse_args(["train", "--recipe", "keras-example", "--config", str(tmp_path / "c.yaml"),
                                      "--epochs", "3", "--no-channels-last", "--model-arg", "x=1"])
    with pytest.raises(ConfigError, match="takes no argument"):
        from convscope.models import create_model

        cfg = config_from_args(args)
        create_model(cfg.model.name, **cfg.model.args)
    args = build_parser().parse_args(["train", "--recipe", "keras-example", "--config", str(tmp_path / "c.yaml"),
                                      "--epochs", "3", "--no-channels-last"])
    cfg = config_from_args(args)
    assert cfg.epochs == 3            # flag beats file
    assert cfg.batch_size == 32       # file beats recipe
    assert cfg.optimizer == "adam"    # recipe beats defaults
    assert cfg.channels_last is False


def test_dataset_defaults_fill_only_what_the_user_left_unset():
    from convscope.training.config import resolve

    def run_cfg(**values):
        return resolve(config_from_dict(values), hflip_ok=values.get("dataset") == "fashion-mnist", device="cpu",
                       native_bf16=False)

    fashion = run_cfg(dataset="fashion-mnist")
    # speed round 2: no shifts; round 3: 5 epochs of 128 images at lr 0.05
    assert (fashion.epochs, fashion.translate, fashion.batch_size, fashion.lr) == (5, 0, 128, 0.05)
    digits = run_cfg(dataset="digits")
    assert (digits.epochs, digits.translate, digits.batch_size, digits.lr) == (12, 2, 256, 0.1)
    mine = run_cfg(dataset="fashion-mnist", epochs=12, translate=2, batch_size=256)
    assert (mine.epochs, mine.translate, mine.batch_size, mine.lr) == (12, 2, 256, 0.05)  # explicit: never replaced
    assert run_cfg(dataset="fashion-mnist", translate=1).epochs == 5
    assert resolve(fashion, hflip_ok=True, device="cpu", native_bf16=False) == fashion   # idempotent


def test_an_unresolved_config_is_refused_by_the_parts_that_need_it():
    from convscope.training.optim import lr_at

    with pytest.raises(ConfigError, match="epochs not set"):
        lr_at(config_from_dict({}), 0, 10)


# ---- sections (issue 22): flat and nested configs, metadata-driven checks and flags ---------------------------
def test_flat_nested_and_mixed_configs_are_the_same_config():
    from convscope.training.config import FLAT

    flat = config_from_dict({"lr": 0.05, "model": "mlp", "schedule": "cosine", "translate": 1, "epochs": 3})
    nested = config_from_dict({"optim": {"lr": 0.05}, "model": {"name": "mlp"}, "schedule": {"name": "cosine",
                               "epochs": 3}, "augment": {"translate": 1}})
    mixed = config_from_dict({"optim": {"lr": 0.05}, "model": "mlp", "schedule": "cosine", "translate": 1,
                              "epochs": 3})
    assert flat == nested == mixed
    assert (nested.optim.lr, nested.model.name, nested.schedule.name, nested.augment.translate) == (
        0.05, "mlp", "cosine", 1)
    assert nested.lr == 0.05 and nested.epochs == 3            # flat names read through to their section
    assert config_from_dict(nested.to_dict()) == nested == config_from_dict(nested.flat())
    assert set(nested.flat()) == set(FLAT) and set(nested.to_dict()) == {"name", "data", "model", "optim",
                                                                          "schedule", "augment", "eval", "runtime"}


def test_section_errors_name_the_key_and_list_the_sections_keys():
    with pytest.raises(ConfigError, match=r"optim\.learning_rate.*valid keys of optim: batch_size, optimizer, lr"):
        config_from_dict({"optim": {"learning_rate": 0.1}})
    with pytest.raises(ConfigError, match="lr is given twice"):
        config_from_dict({"lr": 0.1, "optim": {"lr": 0.2}})
    with pytest.raises(ConfigError, match=r"optim\.lr = 'x' has the wrong type: expected float"):
        config_from_dict({"optim": {"lr": "x"}})
    with pytest.raises(AttributeError, match="no field 'learning_rate'"):
        TrainConfig().learning_rate   # noqa: B018
    with pytest.raises(ConfigError, match=r"optim is a section: expected a mapping .* got float; keys of optim: "
                                          r"batch_size, optimizer, lr") as e:
        config_from_dict({"optim": 0.01})        # before: "unknown key optim" while listing optim as a section
    assert "unknown" not in str(e.value)


def _outside(interval, integer):
    """A value just outside ``interval`` ("[0, 1)", "(0, inf)", ...), below it."""
    lo = float(interval[1:-1].split(",")[0])
    bad = lo if interval[0] == "(" else lo - 1
    return int(bad) if integer else bad


@pytest.mark.parametrize("key", [k for k, f in FIELDS.items() if "range" in f.metadata])
def test_every_range_in_the_metadata_is_enforced_by_name(key):
    from convscope.training.config import HINTS

    interval = FIELDS[key].metadata["range"]
    integer = int in (getattr(HINTS[key], "__args__", None) or (HINTS[key],))
    with pytest.raises(ConfigError, match=rf"^{key} must"):
        config_from_dict({key: _outside(interval, integer)})


def test_train_flags_keep_their_names_and_come_from_the_fields():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {s for a in train._actions for s in a.option_strings if a.dest in FIELDS}
    assert flags == {
        "--name", "--dataset", "--data-dir", "--train-subset", "--val-fraction", "--model", "--model-arg",
        "--dropout", "--init", "--batch-size", "--optimizer", "--lr", "--momentum", "--nesterov", "--no-nesterov",
        "--weight-decay", "--label-smoothing", "--grad-clip", "--ema", "--epochs", "--schedule", "--warmup-epochs",
        "--step-epochs", "--step-gamma", "--translate", "--hflip", "--no-hflip", "--cutout", "--rotate", "--scale",
        "--aspect", "--stroke", "--blur", "--tta", "--no-tta", "--early-stopping", "--engine", "--conv-algorithm",
        "--precision", "--channels-last", "--no-channels-last", "--threads", "--device", "--sync-bn", "--no-sync-bn",
        "--deterministic", "--no-deterministic", "--seed", "--checkpoint-every", "--max-bad-steps", "--log-every",
        "--track-sparsity", "--no-track-sparsity", "--diagnose", "--tensorboard", "--no-tensorboard"}
    assert all(a.default is None for a in train._actions if a.dest in FIELDS)   # no default restated in cli/
    for removed in ("--lookahead", "--lookahead-alpha", "--low-res", "--low-res-epochs", "--tta-shift"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["train", removed, "1"])


def test_removed_options_are_refused_when_on_and_accepted_when_off(tmp_path):
    from convscope.training.config import recorded_config, retired_settings

    for key, value in (("lookahead", 5), ("low_res", 24), ("tta_shift", 1)):
        with pytest.raises(ConfigError, match=rf"{key}={value}: removed from convscope.*drop the key"):
            config_from_dict({key: value})
    off = {"lookahead": 0, "lookahead_alpha": 0.5, "low_res": 0, "low_res_epochs": 0, "tta_shift": 0}
    assert config_from_dict(off) == TrainConfig()                 # an old hand-written config with them off
    old = {**TrainConfig().flat(), "tta_shift": 2, "lookahead": 5}   # a run's config.json from before
    assert recorded_config(old, "config.json") == config_from_dict(TrainConfig().flat())
    assert retired_settings(old) == {"tta_shift": 2, "lookahead": 5}


def test_dataset_defaults_come_from_the_dataset_registry(monkeypatch):
    from dataclasses import replace

    from convscope.data import registry
    from convscope.training.config import resolve

    def resolved(dataset):
        return resolve(config_from_dict({"dataset": dataset}), hflip_ok=False, device="cpu", native_bf16=False)

    assert registry.DATASETS["fashion-mnist"].train_defaults == {"epochs": 5, "translate": 0, "batch_size": 128,
                                                                 "lr": 0.05}
    assert (resolved("digits").stroke, resolved("digits").blur) == (0.6, 0.8)       # declared for handwriting
    assert (resolved("cifar10").epochs, resolved("cifar10").stroke) == (12, 0.0)    # the generic defaults
    assert (resolved("folder:/nowhere").epochs, resolved("folder:/nowhere").translate) == (12, 2)
    monkeypatch.setitem(registry.DATASETS, "cifar10", replace(registry.DATASETS["cifar10"],
                                                              train_defaults={"epochs": 3}))
    assert resolved("cifar10").epochs == 3                                          # the registry decides
    monkeypatch.setitem(registry.DATASETS, "cifar10", replace(registry.DATASETS["cifar10"],
                                                              train_defaults={"momentum": 0.5}))
    with pytest.raises(ConfigError, match="registry declares defaults for momentum"):
        resolved("cifar10")
