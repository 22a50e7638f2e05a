"""Errors a person can act on. Each message names the thing at fault (file, key, value, URL)."""


class EdgeError(Exception):
    """Base for errors the CLI reports as one clear line (exit status 2) instead of a traceback."""


class ConfigError(EdgeError):
    """A configuration or calibration file is missing, unreadable or invalid."""


class ModelError(EdgeError):
    """A model file is missing, unreadable or not what its sidecar says."""


class SourceError(EdgeError):
    """A capture source cannot be opened or read."""
