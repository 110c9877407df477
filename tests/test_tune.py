"""convscope tune: the space file format and its errors, a study SIGKILLed mid-trial and resumed by parallel
workers that ends with exactly the requested trials, the best config retrained bit-identically, and one study
shared by two processes through a real PostgreSQL server."""

from __future__ import annotations

import json
import re
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from convscope.errors import ConfigError

optuna = pytest.importorskip("optuna")

from convscope.tune import DEFAULT_SPACE, load_space, parse_space  # noqa: E402
from convscope.tune.space import check_space_fits  # noqa: E402
from tests.conftest import as_from_a_terminal  # noqa: E402

# tiny trials: 800 stratified digits (200 of them for validation), LeNet-5, 2 epochs of batch 32, fp32 and
# deterministic kernels so that a retrain is bit-identical; about 3 s a trial on one core
TRAIN = ["--model", "lenet5", "--train-subset", "800", "--val-fraction", "0.25", "--epochs", "2", "--batch-size", "32",
         "--ema", "0", "--threads", "1", "--deterministic", "--precision", "fp32", "--no-channels-last"]
SPACE = {"lr": {"type": "float", "low": 0.002, "high": 0.5, "log": True},
         "weight_decay": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
         "optim.label_smoothing": {"type": "float", "low": 0.0, "high": 0.2},
         "translate": {"type": "int", "low": 0, "high": 2},
         "optimizer": {"type": "categorical", "choices": ["sgd", "adamw"]}}


def _space_file(folder: Path, space: dict) -> Path:
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "convscope", *map(str, args)], capture_output=True, text=True,
                          timeout=600, **kw)


# ---- the space file ---------------------------------------------------------------------------------------

def test_a_space_file_reads_flat_and_section_keys(tmp_path):
    params = load_space(_space_file(tmp_path, SPACE))
    assert [(p.key, p.kind) for p in params] == [("lr", "float"), ("weight_decay", "float"),
                                                 ("label_smoothing", "float"), ("translate", "int"),
                                                 ("optimizer", "categorical")]
    assert params[0].log and (params[0].low, params[0].high) == (0.002, 0.5)
    assert params[4].choices == ("sgd", "adamw")


def test_the_default_space_is_valid_for_the_default_config():
    from convscope.training import TrainConfig

    params = parse_space(DEFAULT_SPACE, "the default space")
    check_space_fits(params, TrainConfig(), "the default space")
    assert {"lr", "weight_decay", "label_smoothing", "batch_size", "translate", "rotate"} == {p.key for p in params}


@pytest.mark.parametrize("space, words", [
    ({"lrr": {"type": "float", "low": 0.1, "high": 1}}, ["lrr: no such config key", "valid keys: name,"]),
    ({"optim.lrr": {"type": "float", "low": 0.1, "high": 1}}, ["optim.lrr: no such config key"]),
    ({"seed": {"type": "int", "low": 0, "high": 9}}, ["seed: cannot be searched", "selects noise"]),
    ({"val_fraction": {"type": "float", "low": 0.1, "high": 0.2}}, ["val_fraction: cannot be searched"]),
    ({"threads": {"type": "int", "low": 1, "high": 2}}, ["threads: cannot be searched", "give --threads"]),
    ({"lr": {"type": "normal", "low": 0.1, "high": 1}}, ["lr: type must be one of float, int, categorical"]),
    ({"lr": {"type": "float", "low": 0.0, "high": 1, "log": True}}, ["lr: a log scale needs low > 0"]),
    ({"lr": {"type": "float", "low": 1, "high": 0.1}}, ["lr: low (1) must be below high (0.1)"]),
    ({"lr": {"type": "float", "low": 0.1}}, ["lr: needs high"]),
    ({"lr": {"type": "float", "low": 0.1, "high": 1, "lg": True}}, ["lr: unknown field(s) lg"]),
    ({"lr": {"type": "float", "low": -1, "high": 1}}, ["lr: -1.0 is not a valid lr (float): lr must not be negative"]),
    ({"translate": {"type": "int", "low": 0, "high": 2.5}}, ["translate: high must be a whole number"]),
    ({"batch_size": {"type": "categorical", "choices": [0, 64]}},
     ["batch_size: 0 is not a valid batch_size (int): batch_size must be at least 1"]),
    ({"optimizer": {"type": "categorical", "choices": ["sgd", "rmsprop"]}}, ["'rmsprop' is not one of sgd"]),
    ({"optimizer": {"type": "categorical", "choices": []}}, ["choices must be a non-empty list"]),
    ({"lr": 0.1}, ["lr: expected a mapping such as {type: float"]),
    ({"lr": {"type": "float", "low": 0.1, "high": 1}, "optim.lr": {"type": "float", "low": 0.1, "high": 1}},
     ["lr given twice"]),
])
def test_a_bad_space_is_refused_naming_the_file_and_the_key(tmp_path, space, words):
    path = _space_file(tmp_path, space)
    with pytest.raises(ConfigError) as e:
        load_space(path)
    assert str(e.value).startswith(f"{path}: ")
    for w in words:
        assert w in str(e.value)


def test_a_missing_space_file_and_a_bad_study_name_say_so(tmp_path):
    from convscope.cli import main

    with pytest.raises(ConfigError, match="space: .*nope.yaml: no such file"):
        load_space(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="study: '../x' is not a plain name"):
        from convscope.tune import tune
        tune({}, trials=1, study="../x", runs_dir=tmp_path)
    assert main(["tune", "--trials", "1", "--space", str(tmp_path / "nope.yaml")]) == 2


def test_a_space_that_breaks_the_base_config_is_refused_before_any_trial(tmp_path):
    from convscope.training import config_from_dict

    params = parse_space({"optimizer": {"type": "categorical", "choices": ["sgd", "adamw"]}}, "s.yaml")
    with pytest.raises(ConfigError, match="s.yaml: optimizer = 'adamw' with this study's training options: "
                                          "optimizer: the numpy engine has sgd and adam"):
        check_space_fits(params, config_from_dict({"engine": "numpy"}), "s.yaml")


def test_thread_counts_are_checked_before_the_study_folder_exists(tmp_path):
    """A config file's threads beyond the CPUs, and workers x threads beyond them, are refused as `train` refuses
    them, before any trial: a failed first trial used to leave a study that then refused the corrected config."""
    from convscope._cpus import cpu_limit

    cpus = cpu_limit()
    space = _space_file(tmp_path, {"lr": SPACE["lr"]})
    config = tmp_path / "c.yaml"
    config.write_text(f"threads: {cpus + 1}\n")
    r = _cli("tune", "--trials", "1", "--config", config, "--space", space, "--out", tmp_path / "s1")
    assert r.returncode == 2 and f"c.yaml: threads: must be at most {cpus}" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "s1").exists()
    r = _cli("tune", "--trials", "1", "--jobs", "2", "--threads", cpus, "--space", space, "--out", tmp_path / "s2")
    assert r.returncode == 2, r.stderr
    assert f"--threads: 2 workers (jobs) x {cpus} threads each is more threads than the {cpus} CPUs" in r.stderr
    assert not (tmp_path / "s2").exists()


def test_without_optuna_the_message_says_how_to_install_it(monkeypatch):
    from convscope.tune.storage import optuna_module

    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ConfigError, match=r"pip install 'convscope\[tune\]'"):
        optuna_module()


# ---- the acceptance: SIGKILL mid-study, resume in parallel, exactly N trials, best config retrains ------------

def test_a_study_killed_mid_trial_resumes_to_exactly_the_requested_trials(tmp_path):
    study_dir, trials, space_file = tmp_path / "study", 12, _space_file(tmp_path, SPACE)
    args = ["tune", "--trials", trials, "--out", study_dir, "--space", space_file, *TRAIN]
    log = tmp_path / "killed.log"
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "convscope", *map(str, args)], stdout=f, stderr=f)
    deadline = time.time() + 300
    killed_in = None
    while time.time() < deadline and proc.poll() is None:   # kill inside a trial, once 3 trials have finished
        runs = sorted((study_dir / "trials").glob("trial-*"))
        finished = [r for r in runs if (r / "model.json").exists()]
        running = [r for r in runs if (r / "checkpoint.safetensors").exists() and not (r / "model.json").exists()]
        if len(finished) >= 3 and running:
            proc.send_signal(signal.SIGKILL)
            killed_in = running[0]
            break
        time.sleep(0.02)
    assert proc.wait() == -signal.SIGKILL, log.read_text()
    # each finished trial's line counts the trials and gives an ETA (convscope/_progress.py's words)
    assert re.search(r"^trial 0: (val|pruned) .*; 1/12 trials, [^,]+, ETA \d", log.read_text(), re.M), log.read_text()
    storage = f"sqlite:///{study_dir / 'study.db'}"
    study = optuna.load_study(study_name="tune-lenet5-digits", storage=storage)
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.RUNNING) == 1      # the SIGKILL left its trial RUNNING
    dead = next(t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING)
    assert Path(dead.user_attrs["run_dir"]) == killed_in

    r = _cli(*args, "--jobs", "2")         # the same command continues the study, with two worker processes
    assert r.returncode == 0, r.stderr
    assert f"trials {dead.number}: interrupted or their worker died; queued again" in r.stdout

    study = optuna.load_study(study_name="tune-lenet5-digits", storage=storage)
    ts = optuna.trial.TrialState
    counted = [t for t in study.trials if t.state in (ts.COMPLETE, ts.PRUNED)]
    assert len(counted) == trials                                   # exactly N finished: none lost, none extra
    assert not [t for t in study.trials if t.state in (ts.RUNNING, ts.WAITING)]
    assert len({t.user_attrs["run_dir"] for t in counted}) == trials   # no run trained twice
    # the killed trial failed, and its retry carried its parameters and continued its run folder
    failed = [t for t in study.trials if t.state == ts.FAIL and not t.user_attrs.get("surplus")]
    assert [t.number for t in failed] == [dead.number]
    retry = next(t for t in counted if t.system_attrs.get("failed_trial") == dead.number)
    assert retry.params == dead.params and retry.user_attrs["run_dir"] == str(killed_in)
    assert len({t.user_attrs["worker"]["pid"] for t in counted if t.number > dead.number}) == 2   # two workers ran
    # pruning: the median pruner stopped poor trials after their first epoch, and said so in their metrics
    pruned = [t for t in counted if t.state == ts.PRUNED]
    assert pruned, [(t.number, t.state, t.intermediate_values) for t in study.trials]
    for t in pruned:
        epochs = [json.loads(x) for x in (Path(t.user_attrs["run_dir"]) / "metrics.jsonl").read_text().splitlines()
                  if '"epoch"' in x and '"kind": "epoch"' in x]
        assert len(epochs) == 1 and epochs[0]["pruned"] is True
    # every trial is an ordinary run: convscope eval reads it
    some = Path(counted[0].user_attrs["run_dir"])
    r_eval = _cli("eval", some)
    assert r_eval.returncode == 0 and "accuracy" in r_eval.stdout, r_eval.stderr

    # results: the table (printed and saved), the plots, and the best config
    best = max((t for t in counted if t.state == ts.COMPLETE), key=lambda t: (t.value, -t.number))
    assert f"best: trial {best.number}, val {100 * best.value:.2f}%" in r.stdout
    assert "selected on the validation split: val_fraction 0.25" in r.stdout
    table = (study_dir / "results.md").read_text()
    assert table.count("| complete |") + table.count("| pruned |") == trials
    rows = json.loads((study_dir / "trials.json").read_text())["trials"]
    assert len(rows) == len(study.trials)
    for png in ("history.png", "importance.png"):
        assert (study_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the best config retrains, through `convscope train --config`, to the recorded accuracy, bit for bit
    out = tmp_path / "retrain"
    r = _cli("train", "--config", study_dir / "best.yaml", "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    recorded = json.loads((Path(best.user_attrs["run_dir"]) / "summary.json").read_text())
    again = json.loads((out / "summary.json").read_text())
    assert again["test_accuracy"] == recorded["test_accuracy"] == best.user_attrs["test_accuracy"]
    epochs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"kind": "epoch"' in x]
    assert epochs[-1]["val_accuracy"] == best.value
    assert (out / "model.safetensors").read_bytes() == \
        (Path(best.user_attrs["run_dir"]) / "model.safetensors").read_bytes()

    # continuing the study with other settings is refused, naming what changed
    other = tmp_path / "other"
    other.mkdir()
    space = _space_file(other, {**SPACE, "lr": {"type": "float", "low": 0.003, "high": 0.5, "log": True}})
    r = _cli(*[space if a == space_file else a for a in args], "--lr", "0.05")
    assert r.returncode == 2
    assert "was started with other settings (lr: the default then, 0.05 now; space: {'lr': {'type': 'float', 'low': " \
           "0.002" in r.stderr


# ---- several machines: one study in a real PostgreSQL server ------------------------------------------------

def _postgres_bin() -> Path | None:
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@pytest.fixture
def postgres():
    """A private PostgreSQL cluster in a temporary folder, listening on a Unix socket only; its URL."""
    pytest.importorskip("psycopg", reason="the PostgreSQL driver psycopg is not installed")
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="convscope-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:   # initdb refuses root: run the server as the postgres system user
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the server as")
        os.chown(folder, pw.pw_uid, pw.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, sock = folder / "data", folder
    try:
        subprocess.run([*run_as, bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust"], check=True,
                       capture_output=True, timeout=120)
        subprocess.run([*run_as, bindir / "pg_ctl", "-D", data, "-w", "-l", folder / "log", "-o",
                        f"-c listen_addresses='' -c unix_socket_directories={sock}", "start"], check=True,
                       capture_output=True, timeout=120)
        subprocess.run([*run_as, bindir / "createdb", "-h", sock, "-U", "postgres", "optuna"], check=True,
                       capture_output=True, timeout=60)
        yield f"postgresql+psycopg://postgres@/optuna?host={sock}"
    finally:
        subprocess.run([*run_as, bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True,
                       timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def test_two_machines_share_one_study_through_postgresql(tmp_path, postgres):
    """Two `convscope tune` processes with their own study folders (as on two machines) and one --storage: the
    study ends with exactly the trials asked for, shared between them."""
    trials = 4
    args = ["tune", "--trials", trials, "--storage", postgres, "--study", "shared", "--pruner", "none",
            "--space", _space_file(tmp_path, SPACE), *TRAIN]
    procs = [subprocess.Popen([sys.executable, "-m", "convscope", *map(str, args), "--out", tmp_path / f"m{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
    storage = optuna.storages.RDBStorage(postgres)
    try:
        trials_now = optuna.load_study(study_name="shared", storage=storage).trials
    finally:   # close the connections before the server stops
        storage.remove_session()
        storage.engine.dispose()
    done = [t for t in trials_now if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == trials
    hosts = {Path(t.user_attrs["run_dir"]).parents[1].name for t in done}
    assert hosts == {"m0", "m1"}          # both "machines" ran trials of the one study
    assert all((Path(t.user_attrs["run_dir"]) / "model.json").exists() for t in done)
    # each machine writes the study's results; the best trial's config, wherever that trial ran
    best = max(done, key=lambda t: (t.value, -t.number))
    for m in ("m0", "m1"):
        text = (tmp_path / m / "best.yaml").read_text()
        assert f"trial {best.number}," in text
        lr = yaml.safe_load(text)["optim"]["lr"]
        assert lr == best.params["lr"]


# ---- the report, on a study built by hand ------------------------------------------------------------------

def test_the_report_names_every_state_and_leaves_matplotlib_as_it_was(tmp_path):
    import matplotlib

    from convscope.tune.report import trial_rows, write_results

    ts = optuna.trial.TrialState
    dist = {"lr": optuna.distributions.FloatDistribution(0.01, 1.0, log=True)}
    study = optuna.create_study(direction="maximize")
    for value, lr in ((0.5, 0.02), (0.9, 0.1), (0.7, 0.5)):
        study.add_trial(optuna.trial.create_trial(params={"lr": lr}, distributions=dist, value=value,
                                                  user_attrs={"run_dir": str(tmp_path / f"r{lr}")}))
    study.add_trial(optuna.trial.create_trial(state=ts.PRUNED, params={"lr": 0.8}, distributions=dist,
                                              intermediate_values={1: 0.2}))
    study.add_trial(optuna.trial.create_trial(state=ts.FAIL, params={"lr": 0.3}, distributions=dist))
    study.add_trial(optuna.trial.create_trial(params={"lr": 0.3}, distributions=dist, value=0.6,
                                              system_attrs={"failed_trial": 4, "retry_history": [4]}))
    study.add_trial(optuna.trial.create_trial(state=ts.FAIL, params={"lr": 0.4}, distributions=dist,
                                              user_attrs={"surplus": True}))
    rows = trial_rows(study)
    assert [r["state"] for r in rows] == ["complete", "complete", "complete", "pruned", "failed, retried as #5",
                                          "complete", "surplus"]
    assert rows[3]["val_accuracy"] == 0.2 and rows[5]["retry_of"] == 4
    (tmp_path / "r0.1").mkdir()
    (tmp_path / "r0.1" / "config.json").write_text(json.dumps({"name": "x", "optim": {"lr": 0.1}}))
    before = dict(matplotlib.rcParams)
    res = write_results(study, tmp_path, parse_space({"lr": {"type": "float", "low": 0.01, "high": 1.0,
                                                             "log": True}}, "s"), "the validation split")
    assert dict(matplotlib.rcParams) == before     # Optuna's ggplot style stayed inside its figures
    assert res["best"] == 1 and "| **1** (best) | complete | 90.00 |" in res["table"]
    assert "4 complete, 1 pruned, 2 failed or surplus (not counted)" in res["summary"]
    best = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert best == {"optim": {"lr": 0.1}}          # the run's config without its name
    assert (tmp_path / "best.yaml").read_text().startswith("# best trial of study")
    for png in ("history.png", "importance.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_a_searched_null_says_null_in_the_table():
    from convscope.tune.report import table

    params = parse_space({"batch_size": {"type": "categorical", "choices": [None, 64]}}, "s")  # null: the default
    rows = [{"trial": 0, "state": "complete", "val_accuracy": 0.9, "test_accuracy": 0.8, "epochs": 1,
             "params": {"batch_size": None}, "run_dir": None},
            {"trial": 1, "state": "failed", "val_accuracy": None, "test_accuracy": None, "epochs": None,
             "params": {}, "run_dir": None}]
    lines = table(rows, params, 0).splitlines()
    assert lines[2] == "| **0** (best) | complete | 90.00 | 80.00 | 1 | null |  |"
    assert lines[3] == "| 1 | failed |  |  |  |  |  |"


def test_best_yaml_keeps_the_studys_threads_not_a_parallel_trials_share(tmp_path):
    """tune --jobs 2 on 2 CPUs trains each trial on 1 thread; best.yaml, retrained alone, keeps the study's count
    (None: the load-aware default), while every training setting stays what the trial ran."""
    from convscope.tune.report import best_config_yaml

    dist = {"lr": optuna.distributions.FloatDistribution(0.01, 1.0, log=True)}
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("convscope", {"base": {"runtime": {"threads": None, "seed": 0}}})
    study.add_trial(optuna.trial.create_trial(params={"lr": 0.1}, distributions=dist, value=0.9,
                                              user_attrs={"run_dir": str(tmp_path)}))
    (tmp_path / "config.json").write_text(json.dumps({"name": "x", "optim": {"lr": 0.1},
                                                      "runtime": {"threads": 1, "seed": 0}}))
    best = yaml.safe_load(best_config_yaml(study, study.best_trial, "val"))
    assert best == {"optim": {"lr": 0.1}, "runtime": {"threads": None, "seed": 0}}


def test_ctrl_c_checkpoints_the_trial_and_the_next_command_continues_it(tmp_path):
    study_dir, trials = tmp_path / "study", 3
    args = ["tune", "--trials", trials, "--out", study_dir, "--pruner", "none", "--space",
            _space_file(tmp_path, SPACE), *TRAIN]
    proc = subprocess.Popen([sys.executable, "-m", "convscope", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=as_from_a_terminal)
    deadline, hit = time.time() + 300, None
    while time.time() < deadline and proc.poll() is None:   # Ctrl-C inside the second trial's training
        running = [r for r in (study_dir / "trials").glob("trial-*") if (r / "metrics.jsonl").exists()
                   and not (r / "model.json").exists() and r.name != "trial-0000"]
        if running:
            proc.send_signal(signal.SIGINT)
            hit = running[0]
            break
        time.sleep(0.02)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "tune interrupted (the running trial: SIGINT at step" in err and "checkpoint saved)" in err
    assert (hit / "checkpoint.safetensors").exists() and not (hit / "model.json").exists()

    r = _cli(*args)
    assert r.returncode == 0, r.stderr
    assert "trials 1: interrupted or their worker died; queued again" in r.stdout
    study = optuna.load_study(study_name="tune-lenet5-digits", storage=f"sqlite:///{study_dir / 'study.db'}")
    ts = optuna.trial.TrialState
    done = [t for t in study.trials if t.state == ts.COMPLETE]
    assert len(done) == trials and [t.number for t in study.trials if t.state == ts.FAIL] == [1]
    retry = next(t for t in done if t.system_attrs.get("failed_trial") == 1)
    assert retry.user_attrs["run_dir"] == str(hit) and (hit / "model.json").exists()


def test_a_study_of_two_continues_a_trial_interrupted_as_it_starts(tmp_path):
    """--trials 2, Ctrl-C while the second trial writes its first checkpoint: the next command said the trial was
    queued again and then waited for ever (the queued retry filled the count, so no worker took it)."""
    study_dir = tmp_path / "study"
    args = [str(a) for a in ["tune", "--trials", 2, "--out", study_dir, "--pruner", "none", "--space",
                             _space_file(tmp_path, SPACE), *TRAIN]]
    launcher = Path(__file__).parent / "training" / "launcher.py"
    # each trial writes 3 checkpoints (before its first step, after each of its 2 epochs): the 4th is trial 1's first
    r = subprocess.run([sys.executable, str(launcher), "--kill-at", "write:checkpoint.safetensors:4", "--signal",
                        "INT", "--", *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 130 and "convscope: tune interrupted" in r.stderr, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and "failed" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "convscope", *args], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    study = optuna.load_study(study_name="tune-lenet5-digits", storage=f"sqlite:///{study_dir / 'study.db'}")
    ts = optuna.trial.TrialState
    assert [t.number for t in study.trials if t.state == ts.COMPLETE] == [0, 2]
    assert [t.number for t in study.trials if t.state == ts.FAIL] == [1]
