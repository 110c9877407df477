"""Look inside a trained CNN: activations, ReLU sparsity, the edge-detector experiment, receptive fields,
filters, feature maps and top-k activating images. Works on any ``nn.Module`` through named layers."""

from ..models.probe import eval_mode, layer_input_shapes
from .edges import FILTERS, EdgeResult, edge_experiment
from .hooks import LayerInfo, capture, default_activation_layers, hook_count, list_layers, resolve_layers
from .receptive_field import (Field, FieldReport, FieldRow, empirical_receptive_field, receptive_field_report,
                              receptive_fields)
from .sparsity import LayerSparsity, activation_sparsity
from .target import Target, from_model_file, from_run
from .topk import TopRecord, topk

__all__ = ["FILTERS", "EdgeResult", "Field", "FieldReport", "FieldRow", "LayerInfo", "LayerSparsity", "Target",
           "TopRecord", "activation_sparsity", "capture", "default_activation_layers", "edge_experiment",
           "empirical_receptive_field", "eval_mode", "from_model_file", "from_run", "hook_count", "layer_input_shapes",
           "list_layers", "receptive_field_report", "receptive_fields", "resolve_layers", "topk"]
