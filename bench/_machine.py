"""What every result in bench/results/ records beside its numbers: ``provenance()`` gives the git commit (and
whether the tree was dirty), the command line, the machine (CPU model and flags, cores, torch and Python
versions) and the date. Every script puts it in its result as ``"provenance": provenance()``."""

from convscope.benchmark import machine, provenance

__all__ = ["machine", "provenance"]
