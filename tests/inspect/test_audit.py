"""The sanity check separates a real map from an edge detector that ignores the weights; deletion and
insertion curves, AUCs and the Spearman/SSIM helpers against direct computations."""

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from torch import nn

from convscope.data import load
from convscope.inspect import audit_method, deletion_insertion, hook_count, randomization_check
from convscope.inspect.attribution import BASELINE, METHODS, baseline_of
from convscope.inspect.audit import (CONTROLS, MethodAudit, audit, audit_table, auc, make_baseline, paired_bootstrap,
                                     spearman, ssim, top_half_score)


def edge_detector(model, inputs, target):
    """A 'map' that ignores the model: the Sobel gradient magnitude of the input."""
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=inputs.dtype).view(1, 1, 3, 3)
    g = inputs.mean(1, keepdim=True)
    return torch.hypot(F.conv2d(g, kx, padding=1), F.conv2d(g, kx.transpose(2, 3), padding=1))[:, 0].numpy()


@pytest.fixture(scope="module")
def images():
    return load("digits", "test").images[:48]


def test_randomization_separates_a_real_map_from_an_edge_detector(small_run, images):
    model = small_run.model
    x = small_run.normalization.apply(images)
    before = copy.deepcopy(model.state_dict())
    real = randomization_check(model, x, "saliency", seed=0)
    edge = randomization_check(model, x, edge_detector, seed=0)
    names = [r["randomized_to"] for r in real]
    assert names[0] == "fc" and names[-1] == "conv1"             # cascading from the top
    assert all(r["spearman"] == pytest.approx(1.0) for r in edge)  # ignores the weights: never changes
    assert real[-1]["spearman"] < 0.5 < edge[-1]["spearman"]
    assert max(r["spearman"] for r in real) < min(r["spearman"] for r in edge)
    for a, b in zip(before.values(), model.state_dict().values()):  # the user's model is untouched
        assert torch.equal(a, b)
    assert hook_count(model) == 0


def test_spearman_and_ssim_helpers():
    g = np.random.default_rng(0)
    a, b = g.normal(size=(4, 6, 6)), g.normal(size=(4, 6, 6))
    b[:, :2] = 0                                                    # ties
    want = [spearmanr(np.abs(a[i]).ravel(), np.abs(b[i]).ravel()).statistic for i in range(4)]
    np.testing.assert_allclose(spearman(a, b), want, rtol=1e-12)
    np.testing.assert_allclose(spearman(a, -a), 1.0)                # on |map|
    np.testing.assert_allclose(ssim(a, a), 1.0)
    assert (ssim(a, b) < 0.9).all()


class Linear(nn.Module):
    """Logistic read-out of the pixels: pixel i's exact contribution to logit k is w[k, i] * x[i]."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 2, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(2, 64, generator=torch.Generator().manual_seed(0)))

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_deletion_and_insertion_reward_the_true_contributions():
    model = Linear().eval()
    x = torch.rand(30, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    target = torch.zeros(30, dtype=torch.long)
    contrib = ((model.fc.weight[0] - model.fc.weight[1]).view(1, 1, 8, 8) * x)[:, 0].detach().numpy()
    good = deletion_insertion(model, x, contrib, target, steps=16, baseline=torch.zeros(()))
    bad = deletion_insertion(model, x, -contrib, target, steps=16, baseline=torch.zeros(()))
    assert good["deletion_auc"] < good["random_deletion_auc"] < bad["deletion_auc"]
    assert good["insertion_auc"] > good["random_insertion_auc"] > bad["insertion_auc"]
    with torch.no_grad():
        p_full = model(x).softmax(1)[:, 0].mean().item()
        p_blank = model(torch.zeros_like(x)).softmax(1)[:, 0].mean().item()
    cur = good["curves"]
    assert cur["deletion_prob"][0] == pytest.approx(p_full) and cur["deletion_prob"][-1] == pytest.approx(p_blank)
    assert cur["insertion_prob"][0] == pytest.approx(p_blank) and cur["insertion_prob"][-1] == pytest.approx(p_full)
    assert good["deletion_auc"] == pytest.approx(np.trapezoid(cur["deletion_prob"], np.linspace(0, 1, 17)))
    assert auc(np.ones(5)) == pytest.approx(1.0)


def test_audit_method_and_cli(small_run, images, tmp_path):
    x = small_run.normalization.apply(images[:16])
    row = audit_method(small_run.model, x, "gradcam", steps=8, with_ssim=True)
    d = row.to_dict()
    assert d["method"] == "gradcam" and "ssim" in d["randomization"][0]
    assert len(d["faithfulness"]["curves"]["deletion_prob"]) == 9
    assert hook_count(small_run.model) == 0
    r = subprocess.run([sys.executable, "-m", "convscope", "explain", str(small_run.path), "--audit", "--limit", "16",
                        "--method", "saliency", "--out", str(tmp_path)], check=False, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "| saliency |" in (tmp_path / "audit.md").read_text()
    assert json.loads((tmp_path / "audit.json").read_text())["images"] == 16
    assert (tmp_path / "audit.png").stat().st_size > 1000


# -- the audit's rules (issue 23), one test each ------------------------------------------------------------------

def _zeros(model, inputs, target):
    return np.zeros((len(inputs), *inputs.shape[2:]), dtype=np.float32)


def test_constant_maps_give_no_correlation_never_changed(small_run, images):
    a = np.random.default_rng(0).normal(size=(3, 5, 5))
    b = a.copy()
    b[1], b[2] = 0.0, 7.0                                           # all-zero and flat
    rho = spearman(a, b)
    assert rho[0] == pytest.approx(1.0) and np.isnan(rho[1]) and np.isnan(rho[2])
    rows = randomization_check(small_run.model, small_run.normalization.apply(images[:4]), _zeros)
    assert all(np.isnan(r["spearman"]) and r["defined"] == 0 for r in rows)
    assert not MethodAudit("zeros", rows, {}).passes_randomization   # undefined is not "changed"


def _cascade(values):
    return [{"randomized_to": f"l{i}", "spearman": v, "defined": 1.0} for i, v in enumerate(values)]


def test_randomization_verdict_reads_the_top_half_of_the_cascade(small_run, images):
    late = MethodAudit("late", _cascade([0.9, 0.85, 0.8, 0.7, 0.1, 0.05]), {})   # changes only at the bottom
    early = MethodAudit("early", _cascade([0.3, 0.2, 0.1, 0.1, 0.6, 0.9]), {})
    assert late.randomization_score == pytest.approx(0.85) and not late.passes_randomization
    assert early.randomization_score == pytest.approx(0.2) and early.passes_randomization
    assert top_half_score(_cascade([0.1, np.nan, 0.3])) == pytest.approx(0.1)  # ceil(3/2) = 2 steps, NaN left out
    # guided backprop keeps more of its map than saliency while the top layers are re-drawn (Adebayo et al.)
    x = small_run.normalization.apply(images[:24])
    gb = top_half_score(randomization_check(small_run.model, x, "guided_backprop"))
    sal = top_half_score(randomization_check(small_run.model, x, "saliency"))
    assert gb > sal


def test_audit_table_has_guided_backprop_deconvnet_and_controls_never_trusted(small_run, images):
    assert {"guided_backprop", "deconvnet"} <= set(METHODS)        # in every default audit
    x = small_run.normalization.apply(images[:12])
    rows = audit(small_run.model, x, ["saliency", "guided_backprop", "deconvnet"], steps=6)
    names = [r.method for r in rows]
    assert names == ["saliency", "guided_backprop", "deconvnet", *CONTROLS]
    for r in rows:
        if r.control:                                   # model-independent: the same map whatever the weights
            assert all(c["spearman"] == pytest.approx(1.0) for c in r.randomization)
            assert not r.trusted and not r.passes_randomization and r.verdict.startswith("control")
        else:
            assert set(r.versus_controls) == {"control: image", "control: edges"}
            assert r.trusted == (r.passes_randomization and r.passes_faithfulness and r.separates_from_controls)
    table = audit_table(rows)
    assert all(f"| {n} |" in table for n in names)


class TopRow(nn.Module):
    """Class 0's evidence lies in the image's first row only: deleting it first is what a top-left-first
    ordering of tied pixels would do."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 2, bias=False)
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.weight[0, :8] = 3.0

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_ties_are_broken_at_random_over_several_orders():
    model = TopRow().eval()
    x = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    target = torch.zeros(40, dtype=torch.long)
    flat = deletion_insertion(model, x, np.zeros((40, 8, 8)), target, steps=8, orders=4)
    assert flat["orders"] == 4 and flat["tied_maps"] == 1.0
    top_left_first = -np.arange(64, dtype=np.float64).reshape(1, 8, 8).repeat(40, 0)  # what a stable sort did
    biased = deletion_insertion(model, x, top_left_first, target, steps=8)
    assert biased["orders"] == 1                                    # no ties: one order
    assert abs(flat["deletion_auc"] - flat["random_deletion_auc"]) < 0.05   # ties carry no order
    assert biased["deletion_auc"] < flat["deletion_auc"] - 0.1


def test_baselines_are_mean_grey_stated_and_consistent(small_run, images):
    from scipy.ndimage import gaussian_filter

    model = Linear().eval()
    x = torch.rand(10, 1, 8, 8, generator=torch.Generator().manual_seed(3)) + 0.5
    res = deletion_insertion(model, x, np.random.default_rng(0).random((10, 8, 8)), 0, steps=4)
    with torch.no_grad():
        p_zero = model(torch.zeros_like(x)).softmax(1)[:, 0].mean().item()
    assert res["curves"]["deletion_prob"][-1] == pytest.approx(p_zero)     # default: 0 in model input
    assert res["baseline"] == BASELINE == baseline_of("integrated_gradients") == baseline_of("occlusion")
    blur, words = make_baseline(x, "blur")
    want = gaussian_filter(x.double().numpy(), sigma=(0, 0, 1.0, 1.0), mode="nearest", truncate=3.0)
    np.testing.assert_allclose(blur.numpy(), want, rtol=1e-5, atol=1e-6)
    assert "blurred" in words
    black, _ = make_baseline(x, "black")
    assert torch.equal(black, x.amin(dim=(0, 2, 3), keepdim=True).expand_as(x))
    # the run's inputs: mean grey is not the background (black), which most digit pixels are
    xr = small_run.normalization.apply(images[:8])
    assert deletion_insertion(small_run.model, xr, np.random.default_rng(0).random((8, 28, 28)),
                              steps=2)["baseline_pixel_share"] == 0.0


def test_paired_bootstrap_against_hand_cases():
    b = paired_bootstrap(np.full(50, 0.3), np.zeros(50))
    assert b["mean"] == pytest.approx(0.3) and b["ci95"] == pytest.approx([0.3, 0.3])
    d = np.random.default_rng(1).normal(0.1, 1.0, 400)
    b = paired_bootstrap(d, np.zeros(400))
    half = 1.96 * d.std(ddof=1) / np.sqrt(400)                      # the normal approximation
    assert (b["ci95"][1] - b["ci95"][0]) / 2 == pytest.approx(half, rel=0.15)
    assert b["ci95"][0] < d.mean() < b["ci95"][1]
