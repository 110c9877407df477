import pytest


@pytest.fixture
def tiny():
    """A small, quick training config: 512 digits, batch 64 (8 steps per epoch), an MLP."""
    return dict(model="mlp", train_subset=512, batch_size=64, epochs=2, threads=1, precision="fp32",
                channels_last=False, log_every=1, translate=0, label_smoothing=0.0, weight_decay=0.0,
                stroke=0.0, blur=0.0)
