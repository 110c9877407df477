"""Look inside a trained CNN: activations, ReLU sparsity, the edge-detector experiment, receptive fields,
filters, feature maps and top-k activating images. Works on any ``nn.Module`` through named layers."""

from .edges import FILTERS, EdgeResult, edge_experiment
from .hooks import LayerInfo, capture, default_activation_layers, hook_count, list_layers
from .receptive_field import Field, empirical_receptive_field, receptive_fields
from .sparsity import LayerSparsity, activation_sparsity
from .target import Target, from_model_file, from_run
from .topk import TopRecord, topk

__all__ = ["FILTERS", "EdgeResult", "Field", "LayerInfo", "LayerSparsity", "Target", "TopRecord",
           "activation_sparsity", "capture", "default_activation_layers", "edge_experiment",
           "empirical_receptive_field", "from_model_file", "from_run", "hook_count", "list_layers",
           "receptive_fields", "topk"]
