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
    assert (pt.optimizer, pt.lr, pt.schedule, pt.step_gamma, pt.batch_size, pt.epochs) == (
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
        create_model(cfg.model, **cfg.model_args)
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
    assert (fashion.epochs, fashion.translate) == (6, 0)          # speed round 2: no shifts, 6 epochs
    digits = run_cfg(dataset="digits")
    assert (digits.epochs, digits.translate) == (12, 2)
    mine = run_cfg(dataset="fashion-mnist", epochs=12, translate=2)
    assert (mine.epochs, mine.translate) == (12, 2)               # an explicit value is never replaced
    assert run_cfg(dataset="fashion-mnist", translate=1).epochs == 6
    assert resolve(fashion, hflip_ok=True, device="cpu", native_bf16=False) == fashion   # idempotent


def test_an_unresolved_config_is_refused_by_the_parts_that_need_it():
    from convscope.training.optim import lr_at

    with pytest.raises(ConfigError, match="epochs not set"):
        lr_at(config_from_dict({}), 0, 10)
