"""convscope: build, train and look inside convolutional neural networks, on PyTorch."""

from .errors import ChecksumError, ConfigError, ConvscopeError, DataError, DatasetNotFoundError, DownloadError

__version__ = "0.1.0"

__all__ = ["ChecksumError", "ConfigError", "ConvscopeError", "DataError", "DatasetNotFoundError", "DownloadError",
           "__version__"]
