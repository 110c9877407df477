"""The refine experiment against references: `evaluate` (= `convscope eval`), `topk`, brute-force selection
rules, direct BN statistics, and the maximize variant's two promises (responses up, norms fixed)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from convscope.data import load
from convscope.data.dataset import stratified_split
from convscope.errors import ConfigError, SettingWarning
from convscope.experiments import RefineConfig, refine
from convscope.experiments._measure import reestimated_bn
from convscope.experiments._selection import balanced_counts, representative_subset
from convscope.experiments.result import CONTRASTS
from convscope.inspect import hook_count, topk
from convscope.training.evaluate import evaluate

SMALL = {"k": 2, "steps": 4, "eval_every": 2, "seeds": (0, 1), "batch_size": 32, "test_limit": 400,
         "bn_images": 256, "after_topk": False, "threads": 1}


def _train_of(run):
    train = load("digits", "train")
    _, keep = stratified_split(train.labels.numpy(), run.config.train_subset / len(train), "subset")
    return train.subset(keep)


@pytest.fixture(scope="module")
def result(small_run):
    return refine(small_run.path, RefineConfig(**SMALL))


def test_baseline_equals_evaluate_on_the_full_test_set(small_run):
    res = refine(small_run.path, RefineConfig(k=2, steps=1, seeds=(0,), variants=("top",), bn=("frozen",),
                                              after_topk=False, threads=1))
    ref = evaluate(small_run.model, load("digits", "test"), small_run.normalization, tta=small_run.tta)
    assert res.baseline["test_accuracy"] == ref.accuracy
    assert res.baseline["test_images"] == 2000
    assert res.runs[0].rows[0]["bn"]["frozen"]["test_accuracy"] == ref.accuracy
    assert res.runs[0].rows[0]["bn"]["frozen"]["test_per_class"] == pytest.approx(ref.per_class, abs=0)


def test_chosen_images_are_topk_and_controls_match_in_size(small_run, result):
    train = _train_of(small_run)
    recs = topk(small_run.model, train, ["conv3"], 2, small_run.normalization)["conv3"]
    assert result.topk_train == [[r.index for r in rs] for rs in recs]
    union = sorted({r.index for rs in recs for r in rs})
    by = {(r.variant, r.seed): r for r in result.runs}
    for seed in (0, 1):
        assert by["top", seed].chosen == union
        assert by["maximize", seed].chosen == union
        assert len(by["random", seed].chosen) == len(union) == len(set(by["random", seed].chosen))
        assert len(by["representative", seed].chosen) == len(union)
        counts = np.bincount(train.labels[by["representative", seed].chosen], minlength=10)
        assert counts.max() - counts.min() <= 1                           # class-balanced
        assert by["top", seed].class_mix == np.bincount(train.labels[union], minlength=10).tolist()
    assert by["random", 0].chosen != by["random", 1].chosen               # drawn per seed


def test_same_seed_twice_gives_identical_numbers(small_run, result):
    seeded = ("maximize", "maximize-random", "rotate", "random", "full-own")     # every variant that draws
    again = refine(small_run.path, RefineConfig(**{**SMALL, "variants": seeded}))
    assert json.dumps([r.rows for r in again.runs]) == json.dumps([r.rows for r in result.runs
                                                                   if r.variant in seeded])
    assert torch.equal(again.kernels["maximize"], result.kernels["maximize"])
    assert torch.equal(again.kernels["rotate"], result.kernels["rotate"])


def test_maximize_raises_every_kernel_response_with_norms_fixed(small_run):
    res = refine(small_run.path, RefineConfig(k=2, steps=6, eval_every=6, seeds=(0,), variants=("maximize",),
                                              bn=("frozen",), test_limit=200, batch_size=64, after_topk=False,
                                              threads=1))
    rows = res.runs[0].rows
    r0 = np.array(rows[0]["bn"]["frozen"]["response_topk_train_per_channel"])
    r1 = np.array(rows[-1]["bn"]["frozen"]["response_topk_train_per_channel"])
    assert (r1 > r0).all(), np.flatnonzero(r1 <= r0)
    before, after = res.kernels["before"], res.kernels["maximize"]
    assert not torch.equal(before, after)
    n0, n1 = before.flatten(1).norm(dim=1), after.flatten(1).norm(dim=1)
    assert ((n1 - n0).abs() / n0).max() < 1e-6
    assert rows[-1]["kernel_norm_change"] < 1e-6
    # step-0 responses are the values topk ranked by (max over positions of the channel's map)
    recs = topk(small_run.model, _train_of(small_run), ["conv3"], 2, small_run.normalization)["conv3"]
    assert r0 == pytest.approx([np.mean([r.value for r in rs]) for rs in recs], rel=1e-5)


def test_model_untouched_no_hooks_and_settings_restored(small_run, result):
    state = {k: v.clone() for k, v in small_run.model.state_dict().items()}
    det = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    refine(small_run.path, RefineConfig(k=2, steps=1, seeds=(0,), variants=("maximize",), test_limit=100,
                                        bn_images=64, after_topk=False, threads=1))
    assert hook_count(small_run.model) == 0
    assert all(torch.equal(v, small_run.model.state_dict()[k]) for k, v in state.items())
    assert torch.are_deterministic_algorithms_enabled() == det and torch.get_num_threads() == threads


def test_fine_tune_on_chosen_images_fits_them(result):
    f = result.final("top", "frozen")
    assert f["chosen_loss_change"]["mean"] < 0                             # the loss on its own images falls
    assert result.final("maximize", "frozen")["weight_change"]["mean"] > 0
    assert set(result.summary()) == {"frozen", "reestimate"}
    json.dumps(result.to_dict())                                           # serialisable


def test_reestimated_bn_statistics_equal_a_direct_computation(small_run):
    model = small_run.model
    images = load("digits", "train").images[:300]
    norm = small_run.normalization
    x = norm.apply(images)
    with torch.no_grad():
        z = model.conv1(x)                                                  # (N, C, H, W): bn1's input
    saved = model.bn1.running_mean.clone()
    mean, var = z.double().mean((0, 2, 3)), z.double().var((0, 2, 3), unbiased=True)
    assert (saved.double() - mean).abs().max() > 1e-2                     # the trained statistics differ
    with reestimated_bn(model, images, norm, batch_size=300):
        # PyTorch's CPU batch norm sums 235k float32 values (channels-last): agreement to ~1e-4
        assert torch.allclose(model.bn1.running_mean.double(), mean, rtol=1e-3, atol=3e-4)
        assert torch.allclose(model.bn1.running_var.double(), var, rtol=1e-3, atol=3e-4)
        assert not model.bn1.training
    assert torch.equal(model.bn1.running_mean, saved)


def test_representative_rule_matches_brute_force():
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(60, 5, generator=g, dtype=torch.float64)
    labels = torch.arange(60) % 3
    got = representative_subset(feats, labels, 7, 3)
    want = []
    for c, m in enumerate((3, 2, 2)):
        idx = [i for i in range(60) if labels[i] == c]
        centre = feats[idx].mean(0)
        want += sorted(idx, key=lambda i: (float((feats[i] - centre).pow(2).sum()), i))[:m]
    assert got.tolist() == sorted(want)


def test_balanced_counts():
    assert balanced_counts(10, [5, 5, 5]) == [4, 3, 3]
    assert balanced_counts(10, [1, 9, 9]) == [1, 5, 4]
    assert balanced_counts(30, [5, 5, 5]) == [5, 5, 5]


@pytest.mark.parametrize("kwargs, match", [
    ({"variants": ("maximise",)}, "variants: unknown"), ({"bn": ("train",)}, "bn: unknown"),
    ({"k": 0}, "k: must be at least 1"), ({"seeds": ()}, "seeds"), ({"params": "some"}, "params")])
def test_bad_config(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        RefineConfig(**kwargs)


def test_layer_must_be_a_conv(small_run):
    with pytest.raises(ConfigError, match="not a Conv2d; conv layers: conv1, conv2, conv3"):
        refine(small_run.path, RefineConfig(layer="fc"))
    with pytest.raises(ConfigError, match="unknown layer"):
        refine(small_run.path, RefineConfig(layer="conv9"))
    assert hook_count(small_run.model) == 0


def test_cli_writes_results_and_pictures(small_run, tmp_path):
    out = tmp_path / "refine"
    cmd = [sys.executable, "-m", "convscope", "experiment", "refine", str(small_run.path), "--layer", "conv2",
           "--k", "2", "--steps", "2", "--eval-every", "1", "--seeds", "0,1", "--test-limit", "300",
           "--bn-images", "128", "--batch-size", "32", "--threads", "1", "--after-topk", "--out", str(out)]
    p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    data = json.loads((out / "results.json").read_text())
    assert data["layer"] == "conv2" and data["config"]["seeds"] == [0, 1]
    assert len(data["runs"]) == 20 and [r["step"] for r in data["runs"][0]["rows"]] == [0, 1, 2]
    assert data["versions"]["torch"] == torch.__version__
    assert set(data["paired"]["frozen"]) == set(data["config"]["variants"]) and "dose_response" in data
    for name in ("curves.png", "per-class.png", "kernels.png", "dose.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "maximize" in p.stdout and "BN statistics frozen" in p.stdout
    assert len(data["after"]["maximize"]["topk_train"]) == 16                # conv2 of width 8: 16 kernels


def test_limits_take_class_stratified_subsets(result):
    # the digits splits are sorted by class: the first 400 test images would all be zeros
    assert result.data["test_images"] == 400
    assert not any(np.isnan(result.baseline["test_per_class"]))


@pytest.fixture(scope="module")
def val_run(tmp_path_factory):
    """A tiny run with a validation split (and the run's own test-time views where the config has them)."""
    import dataclasses

    import convscope
    from convscope.training import TrainConfig

    cfg = {"model": "fast", "model_args": {"width": 4}, "train_subset": 600, "val_fraction": 0.25, "epochs": 1,
           "batch_size": 128, "threads": 1, "seed": 3}
    if "tta_shift" in {f.name for f in dataclasses.fields(TrainConfig)}:
        cfg["tta_shift"] = 1                  # views the plain model does not average: refine must use them
    with pytest.warns(SettingWarning, match="a onecycle run of 3 steps"):   # a quick run, warned as such
        return convscope.train(cfg, out=tmp_path_factory.mktemp("val_run") / "run", progress=False)


@pytest.fixture(scope="module")
def val_result(val_run):
    return refine(val_run.path, RefineConfig(k=2, steps=1, seeds=(0,), variants=("top",), bn=("frozen",),
                                             after_topk=False, threads=1))


def test_refine_trains_on_the_runs_training_images_val_split_included(val_run, val_result):
    from convscope.training import training_split
    from convscope.training.batches import load_data

    full = load("digits", "train")
    # by hand: the class-stratified subset of 600, then 25% of it held out with the seed's salt
    _, keep = stratified_split(full.labels.numpy(), 600 / len(full), "subset")
    tr, va = stratified_split(full.labels[keep].numpy(), 0.25, "val:3")
    split = training_split(val_run)
    assert np.array_equal(split.train_indices, keep[tr]) and np.array_equal(split.val_indices, keep[va])
    assert len(split.train_indices) == 450 and len(split.val_indices) == 150
    trained_on = load_data(val_run.config).train                          # what the training loop itself used
    assert torch.equal(full.images[split.train_indices], trained_on.images)
    assert torch.equal(val_result.train_images, trained_on.images)
    assert val_result.data["train_images"] == 450
    naive = full.subset(keep)                                            # the old rebuild: no validation split
    assert len(naive) == 600 and not np.array_equal(keep, split.train_indices)


def test_refine_baseline_evaluates_as_the_run_does(val_run, val_result):
    from convscope.training.evaluate import result_from_logits

    test = load("digits", "test")
    from convscope.models.probe import eval_mode

    with eval_mode(val_run.model), torch.no_grad():                     # the run's own entry point: Run.logits
        logits = torch.cat([val_run.logits(val_run.preprocess(test.images[i:i + 1024]))
                            for i in range(0, len(test), 1024)])
    ref = result_from_logits(logits, test.labels, 10)
    assert val_result.baseline["test_accuracy"] == ref.accuracy
    assert val_result.baseline["test_loss"] == ref.loss
    assert val_result.runs[0].rows[0]["bn"]["frozen"]["test_loss"] == ref.loss   # the measurements too
    if getattr(val_run, "tta_shift", 0):                                 # differs from the plain forward
        assert evaluate(val_run.model, test, val_run.normalization).loss != ref.loss


# --- the controls, the selectivity measure, paired statistics, several models --------------------------------

def _conv3_peaks(run, images):
    """(N, C) float64 peaks of conv3 by a plain forward hook: the oracle for the experiment's own pass."""
    store = []
    h = run.model.conv3.register_forward_hook(lambda m, i, o: store.append(o.detach().flatten(2).amax(2).double()))
    try:
        with torch.no_grad():
            run.model.eval()(run.normalization.apply(images))
    finally:
        h.remove()
    return store[0]


def test_maximize_controls_choose_their_images(small_run, result):
    train = _train_of(small_run)
    peaks = _conv3_peaks(small_run, train.images)                          # (N, C)
    bottom = set()
    for c in range(peaks.shape[1]):
        order = sorted(range(len(train)), key=lambda i: (float(peaks[i, c]), i))
        bottom |= set(order[:2])                                            # k = 2 least-exciting per kernel
    by = {(r.variant, r.seed): r for r in result.runs}
    assert by["maximize-bottom", 0].chosen == sorted(bottom) == by["maximize-bottom", 1].chosen
    rand0, rand1 = by["maximize-random", 0].chosen, by["maximize-random", 1].chosen
    assert rand0 != rand1 and len(rand0) <= 2 * peaks.shape[1]             # k per kernel, drawn per seed
    reps = set(by["representative", 0].chosen)
    assert set(by["maximize-representative", 0].chosen) <= reps            # drawn from the representative set


def test_rotate_turns_each_kernel_by_maximizes_angle_in_another_direction(result):
    before = result.kernels["before"].flatten(1).double()
    maxi, rot = result.kernels["maximize"].flatten(1).double(), result.kernels["rotate"].flatten(1).double()

    def angles(w):
        return torch.arccos(((w * before).sum(1) / (w.norm(dim=1) * before.norm(dim=1))).clamp(-1, 1))

    assert torch.allclose(angles(rot), angles(maxi), atol=2e-5)            # matched per kernel
    assert torch.allclose(rot.norm(dim=1), before.norm(dim=1), rtol=1e-5)   # norms fixed
    d_max, d_rot = maxi - before, rot - before
    cos = (d_max * d_rot).sum(1) / (d_max.norm(dim=1) * d_rot.norm(dim=1))
    assert cos.abs().max() < 0.9                                           # a different direction
    rows = {(r.variant, r.seed): r.rows for r in result.runs}
    for seed in (0, 1):
        assert [x["kernel_angle"] for x in rows["rotate", seed]] == pytest.approx(
            [x["kernel_angle"] for x in rows["maximize", seed]], abs=2e-5)


def test_selectivity_numbers_equal_a_direct_computation(small_run, result):
    test = load("digits", "test")
    _, keep = stratified_split(test.labels.numpy(), 400 / len(test), "refine-test")
    peaks = _conv3_peaks(small_run, test.images[keep])                     # (400, C)
    row = result.runs[0].rows[0]["bn"]["frozen"]
    assert row["response_all_test"] == pytest.approx(float(peaks.mean(0).mean()), rel=1e-6)
    own = torch.tensor([[peaks[i, c] for i in idx] for c, idx in enumerate(result.topk_test)])
    assert row["response_topk_test"] == pytest.approx(float(own.mean(1).mean()), rel=1e-6)
    assert row["topk_test_kept"] == 1.0                                    # step 0: the sets themselves
    f = result.final("maximize", "frozen")
    assert f["selectivity_before"]["mean"] == pytest.approx(row["response_topk_test"] / row["response_all_test"])
    assert 0 <= f["more_selective"]["mean"] <= 1 and 0 <= f["topk_test_kept"]["mean"] <= 1


def test_paired_statistics_match_the_rows_and_scipy(result):
    from scipy.stats import binomtest

    from convscope.experiments._stats import mcnemar

    paired = result.paired()
    assert paired["control"] == "random"
    by = {(r.variant, r.seed): r for r in result.runs}
    for bn in ("frozen", "reestimate"):
        p = paired[bn]["top"]
        want = np.mean([by["top", s].rows[-1]["bn"][bn]["test_accuracy"]
                        - by["random", s].rows[-1]["bn"][bn]["test_accuracy"] for s in (0, 1)])
        assert p["vs_control"]["mean"] == pytest.approx(want, abs=1e-6)     # the same images, the same numbers
        lo, hi = p["vs_control"]["ci95"]
        assert lo <= p["vs_control"]["mean"] <= hi
        change = np.mean([by["top", s].rows[-1]["bn"][bn]["test_accuracy"]
                          - by["top", s].rows[0]["bn"][bn]["test_accuracy"] for s in (0, 1)])
        assert p["change"]["mean"] == pytest.approx(change, abs=1e-6)
        for m in p["per_model"][0]["mcnemar"]:
            a, b = by["top", m["seed"]].correct[bn], by["random", m["seed"]].correct[bn]
            assert (m["only_first"], m["only_second"]) == (int((a & ~b).sum()), int((~a & b).sum()))
        contrasts = {(c["first"], c["second"]): c for c in paired["contrasts"][bn]}
        assert set(contrasts) == set(CONTRASTS)                            # every variant ran: every contrast
        for (a, b), c in contrasts.items():
            want = np.mean([by[a, s].rows[-1]["bn"][bn]["test_accuracy"]
                            - by[b, s].rows[-1]["bn"][bn]["test_accuracy"] for s in (0, 1)])
            assert c["difference"]["mean"] == pytest.approx(want, abs=1e-6)
            lo, hi = c["difference"]["ci95"]
            assert lo <= c["difference"]["mean"] <= hi
            for m in c["per_model"][0]["mcnemar"]:
                x, y = by[a, m["seed"]].correct[bn], by[b, m["seed"]].correct[bn]
                assert (m["only_first"], m["only_second"]) == (int((x & ~y).sum()), int((~x & y).sum()))
    lines = [x for x in result.table().splitlines() if "maximize - rotate" in x]              # frozen, reestimate
    for bn, line in zip(("frozen", "reestimate"), lines, strict=True):
        c = next(c for c in paired["contrasts"][bn] if (c["first"], c["second"]) == ("maximize", "rotate"))
        assert f"{100 * c['difference']['mean']:+.2f}" in line                            # the table prints them
    rng = np.random.default_rng(0)
    for n10, n01 in ((0, 0), (3, 11), (40, 25), (7, 7)):
        a = np.array([True] * n10 + [False] * n01 + [True] * 5)
        b = np.array([False] * n10 + [True] * n01 + [True] * 5)
        order = rng.permutation(len(a))
        got = mcnemar(a[order], b[order])["p"]
        assert got == pytest.approx(1.0 if n10 + n01 == 0 else binomtest(n10, n10 + n01, 0.5).pvalue, rel=1e-12)


def test_dose_response_interpolates_at_matched_gains(result):
    from convscope.experiments.result import _at

    assert _at([0.0, 0.2, 0.6], [0.0, -0.01, -0.05], 0.4) == pytest.approx(-0.03)
    assert _at([0.0, 0.2], [0.0, -0.01], 0.25) is None
    dose = result.dose_response()["frozen"]["maximize"]
    assert dose["step"] == [0, 2, 4] and dose["gain_topk_train"][0] == 0 and dose["accuracy_change"][0] == 0
    assert dose["kernel_angle"][-1] > dose["kernel_angle"][1] > 0
    last = [r.rows[-1] for r in result.runs_of("maximize")]
    assert dose["accuracy_change"][-1] == pytest.approx(result.final("maximize", "frozen")["test_accuracy_change"]
                                                        ["mean"])
    assert dose["kernel_angle"][-1] == pytest.approx(np.mean([x["kernel_angle"] for x in last]))


def test_own_objective_is_read_from_the_runs_config(small_run, result):
    own = result.data["own_objective"]
    cfg = small_run.config
    assert own["label_smoothing"] == cfg.optim.label_smoothing and own["ema"] == cfg.optim.ema
    assert own["augment"]["translate"] is not None                          # resolved as the run trained
    full, mine = result.final("full", "frozen"), result.final("full-own", "frozen")
    assert mine["weight_change"]["mean"] > 0
    assert mine["weight_change"]["mean"] < full["weight_change"]["mean"]    # the EMA moves a fraction of the way


def test_several_models_give_per_model_results(small_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(small_run.path, run)
    cfg = RefineConfig(k=2, steps=2, eval_every=2, seeds=(0,), variants=("maximize", "random"), bn=("frozen",),
                       test_limit=200, bn_images=64, after_topk=False, threads=1, models=2, bootstrap=200)
    res = refine(run, cfg)
    second = run / "experiments" / "refine-models" / f"seed-{small_run.config.runtime.seed + 1}"
    assert (second / "config.json").exists()                               # trained like the first, new seed
    assert [m["seed"] for m in res.models] == [small_run.config.runtime.seed, small_run.config.runtime.seed + 1]
    assert res.models[0]["baseline"] != res.models[1]["baseline"]
    assert len(res.summary()["frozen"]["maximize"]["per_model"]) == 2
    assert len(res.paired()["frozen"]["maximize"]["per_model"]) == 2
    again = refine([run, second], cfg)                                      # a list of runs: the same models
    assert json.dumps([r.rows for r in again.runs]) == json.dumps([r.rows for r in res.runs])


def test_old_results_json_still_loads(result):
    from convscope.experiments import RefineResult

    d = json.loads(json.dumps(result.to_dict()))
    for key in ("format", "models", "paired", "dose_response", "seed_note", "selectivity_note"):
        d.pop(key)
    d["config"] = {k: v for k, v in d["config"].items() if k not in ("models", "bootstrap")}
    d["config"]["variants"] = ["maximize", "top", "random", "representative", "full"]
    d["runs"] = [r for r in d["runs"] if r["variant"] in d["config"]["variants"]]
    new_keys = ("response_all_test", "topk_test_kept", "response_all_test_per_channel", "topk_test_kept_per_channel")
    for r in d["runs"]:
        r.pop("model")
        for row in r["rows"]:
            row.pop("kernel_angle")
            row.pop("kernel_angle_per_channel", None)
            for m in row["bn"].values():
                for k in new_keys:
                    m.pop(k, None)
    old = RefineResult.from_dict(d)                                         # the first format
    assert old.final("top", "frozen")["test_accuracy_change"] == result.final("top", "frozen")["test_accuracy_change"]
    assert old.paired() == {} and "maximize" in old.table()
    again = RefineResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again.summary()["frozen"]["rotate"] == result.summary()["frozen"]["rotate"]


def test_rotate_needs_maximize_and_models_need_a_run(small_run):
    with pytest.raises(ConfigError, match="rotate.*maximize"):
        RefineConfig(variants=("rotate", "top"))
    train, test = load("digits", "train"), load("digits", "test")
    with pytest.raises(ConfigError, match="models: training more models needs a run directory"):
        refine(small_run.model, RefineConfig(models=2, variants=("top",)), train=train, test=test)


_REFINE_PINNED = """
    import json, os, torch
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})   # one CPU, as `taskset -c N` gives
    torch.set_num_threads(2)                                   # the caller's count
    from convscope.experiments import refine
    res = refine(RUN, {"k": 1, "steps": 1, "eval_every": 1, "seeds": [0], "variants": ["top"], "bn": ["frozen"],
                       "train_limit": 100, "test_limit": 50, "bn_images": 20, "after_topk": False})
    print(json.dumps({"recorded": res.versions["threads"], "after": torch.get_num_threads()}))
    """


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity (Linux)")
def test_refine_takes_the_load_aware_count_once_and_records_the_count_it_ran_on(small_run):
    """Without ``threads``, refine runs on the CPUs free at its start (convscope.training.threads): pinned to one
    CPU that is 1, not the caller's 2, and the results record the 1 it ran on (``--threads 1`` reproduces them);
    the caller's count comes back."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    code = textwrap.dedent(_REFINE_PINNED).replace("RUN", repr(str(small_run.path)))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                       env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {"recorded": 1, "after": 2}
