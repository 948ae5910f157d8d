"""promptlab: prompt learning and few/zero-shot text classification."""

__version__ = "0.1.0"
