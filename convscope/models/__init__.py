"""The model zoo: ``create_model(name, in_channels, image_size, num_classes, **kwargs)``."""

from . import classic, fast, fast2  # noqa: F401  (registers the models)
from ._registry import (count_parameters, create_model, flops_per_image, get_entry, list_models, model_kwargs,
                        register_model)
from .legacy import upgrade_state_dict

__all__ = ["count_parameters", "create_model", "flops_per_image", "get_entry", "list_models", "model_kwargs",
           "register_model",
           "upgrade_state_dict"]
