"""The weight digests convscope 0.1 recorded (tests/fixtures/reference_hashes.json), and the digest of a run."""

import json
from pathlib import Path

from convscope.models import create_model, upgrade_state_dict
from convscope.models.weights import load_weights, named_values_sha256

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HASHES = json.loads((FIXTURES / "reference_hashes.json").read_text())


def digest(run_dir: Path) -> str:
    """named-values SHA-256 of a run's final weights, in today's key names and state_dict order."""
    meta = json.loads((run_dir / "model.json").read_text())
    c, h, w = meta["input_shape"]
    model = create_model(meta["model"], c, (h, w), meta["num_classes"], **meta.get("model_args", {}))
    state = upgrade_state_dict(model, load_weights(run_dir / "model.safetensors"))
    return named_values_sha256(state, model.state_dict().keys())


# Options whose defaults changed after 0.1 (stroke and blur were added, the model became fast2): passing these
# reproduces a 0.1 command (put them before a command's own --model: the last one given wins).
AS_IN_0_1 = ["--model", "fast", "--stroke", "0", "--blur", "0"]
