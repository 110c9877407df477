"""The model zoo: ``create_model(name, in_channels, image_size, num_classes, **kwargs)``."""

from . import classic, fast, fast2  # noqa: F401  (registers the models)
from ._registry import (count_parameters, create_model, flops_per_image, get_entry, list_models, model_kwargs,
                        register_model)
from .layers import default_activation_layers, named_layers, resolve_layers
from .legacy import upgrade_state_dict

__all__ = ["count_parameters", "create_model", "default_activation_layers", "flops_per_image", "get_entry",
           "list_models", "model_kwargs", "named_layers", "register_model", "resolve_layers", "upgrade_state_dict"]
