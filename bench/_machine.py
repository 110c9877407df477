"""Facts about the machine a benchmark ran on, recorded beside every result."""

from convscope.benchmark import machine

__all__ = ["machine"]
