"""Look inside a trained CNN: activations, ReLU sparsity, the edge-detector experiment, receptive fields,
filters, feature maps, top-k activating images, feature visualization, projections to pixels and attribution
with sanity checks. Works on any ``nn.Module`` through named layers."""

from ..models.hooks import hook_count
from ..models.probe import eval_mode, layer_input_shapes
from . import objectives
from .attribution import METHODS as ATTRIBUTION_METHODS
from .attribution import Attribution, attribute, explain
from .audit import AuditTable, MethodAudit, audit, audit_method, audit_table, deletion_insertion, randomization_check
from .audit_files import write_audit
from .edges import FILTERS, EdgeResult, edge_experiment
from .filters import Filters, filters
from .hooks import LayerInfo, LayerTable, capture, list_layers
from .projection import Projections, project, projections
from .receptive_field import (
                              Field,
                              FieldReport,
                              FieldRow,
                              empirical_receptive_field,
                              receptive_field_report,
                              receptive_fields,
)
from .sparsity import LayerSparsity, SparsityReport, SparsityTracker, activation_sparsity
from .target import Target, from_model_file, from_run
from .topk import TopK, TopRecord, topk
from .visualize import Visualization, visualize

__all__ = ["ATTRIBUTION_METHODS", "Attribution", "AuditTable", "EdgeResult", "FILTERS", "Field", "FieldReport",
           "FieldRow", "Filters", "LayerInfo", "LayerSparsity", "LayerTable", "MethodAudit", "Projections",
           "SparsityReport", "SparsityTracker", "Target", "TopK", "TopRecord", "Visualization", "activation_sparsity",
           "attribute", "audit", "audit_method", "audit_table", "capture", "deletion_insertion", "edge_experiment",
           "empirical_receptive_field", "eval_mode", "explain", "filters", "from_model_file", "from_run", "hook_count",
           "layer_input_shapes", "list_layers", "objectives", "project", "projections", "randomization_check",
           "receptive_field_report", "receptive_fields", "topk", "visualize", "write_audit"]
