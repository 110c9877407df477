import pytest
import torch

from convscope.errors import ConfigError
from convscope.models import count_parameters, create_model, flops_per_image, list_models, register_model


@pytest.mark.parametrize("name", [e.name for e in list_models()])
@pytest.mark.parametrize("shape, classes", [((1, 28, 28), 10), ((3, 32, 32), 10), ((3, 40, 36), 7)])
def test_every_model_adapts_to_the_dataset(name, shape, classes):
    model = create_model(name, shape[0], shape[1:], classes)
    out = model(torch.zeros(2, *shape))
    assert out.shape == (2, classes)
    names = [n for n, _ in model.named_modules() if n]
    assert names and all(isinstance(n, str) for n in names)


def test_reference_architectures_have_published_sizes():
    pt = create_model("pytorch-example")
    assert count_parameters(pt) == 32 * 9 + 32 + 64 * 32 * 9 + 64 + 9216 * 128 + 128 + 128 * 10 + 10
    assert [m.in_features for m in pt.modules() if isinstance(m, torch.nn.Linear)] == [9216, 128]
    keras = create_model("keras-example")
    assert count_parameters(keras) == 34_826  # the Keras example's model.summary() total
    lenet = create_model("lenet5")
    assert count_parameters(lenet) == 61_706  # LeNet-5 with 16*5*5=400 inputs to the 120-unit layer


def test_flops_counts_multiply_adds_twice():
    # one conv: 28*28 outputs x 6 channels x 25 taps (a multiply-add = 2 FLOPs)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 6, 5, padding=2))
    assert flops_per_image(model, (1, 28, 28)) == 2 * 28 * 28 * 6 * 25


def test_registry_rejects_duplicates_and_unknowns():
    with pytest.raises(ConfigError, match="already registered"):
        register_model("fast", "again")(lambda **kw: None)
    with pytest.raises(ConfigError, match="unknown model 'vgg'.*fast"):
        create_model("vgg")
    with pytest.raises(ConfigError, match="takes no argument.*width"):
        create_model("fast", depth=3)
    with pytest.raises(ConfigError, match="at least"):
        create_model("pytorch-example", 1, (4, 4))


def test_the_stored_zoo_table_is_what_the_zoo_computes():
    """`convscope models` prints convscope/models/zoo_table.json (read without torch); it must be the zoo itself
    (regenerate: python -m convscope.models.zoo_table)."""
    import json

    from convscope.models.zoo_table import TABLE, compute

    assert json.loads(TABLE.read_text()) == compute()
