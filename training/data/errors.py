"""The one exception type every dataset reader raises for bad or missing data on disk."""
from __future__ import annotations


class DatasetError(ValueError):
    """A dataset file is missing, unreadable or malformed.

    The message always names the offending file (and, for text files, the 1-based line number as ``file:line``),
    so a failure 40,000 samples into an epoch points straight at the file to fix.
    """
