"""convscope: build, train and look inside convolutional neural networks, on PyTorch.

    import convscope
    run = convscope.train({"epochs": 5})          # -> Run (model, config, metrics, summary)
    run = convscope.load_run("runs/fast2-digits")  # no unpickling: safetensors + JSON, SHA-256 checked
"""

from ._version import __version__
from .errors import ChecksumError, ConfigError, ConvscopeError, DataError, DatasetNotFoundError, DownloadError
from .training import Run, TrainConfig, load_run, resume, train

__all__ = ["ChecksumError", "ConfigError", "ConvscopeError", "DataError", "DatasetNotFoundError", "DownloadError",
           "Run", "TrainConfig", "__version__", "load_run", "resume", "train"]
