"""Errors the package raises on bad configuration and bad input; both say the offending value."""


class ConfigurationError(ValueError):
    """A setting (model, weights, device, max disparity, precision) cannot be used."""


class InputError(ValueError):
    """An image pair or calibration cannot be processed."""
