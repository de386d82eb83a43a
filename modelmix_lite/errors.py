"""Exceptions raised by modelmix_lite. Every message names the file (or option) and the problem."""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data: a missing or unreadable file, a shape or spacing mismatch, unknown label values, NaNs."""


class ConfigError(ValueError):
    """A bad option: an unknown method, task or profile, or options that cannot be combined."""
