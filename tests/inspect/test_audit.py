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
from convscope.inspect.audit import auc, spearman, ssim


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
