"""Training engines (see ``convscope.training.engine`` for the protocol they follow)."""
