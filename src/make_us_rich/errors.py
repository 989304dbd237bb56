"""Exceptions raised by make-us-rich.

Every error says what is wrong *and* what to do about it. They all derive from
:class:`MakeUsRichError`, so callers (the CLI, KFP components, the server) can catch
one type and show the message without a traceback.
"""

from __future__ import annotations


class MakeUsRichError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(MakeUsRichError, ValueError):
    """A parameter or option has a value that cannot work (bad symbol, interval, range...)."""


class UnknownSymbolError(ConfigError):
    """A well-formed trading pair that nothing here knows: the exchange does not list it, or no
    model in the store serves it (the console answers 404)."""


class DataValidationError(MakeUsRichError, ValueError):
    """Klines failed validation: training on them would be training on broken data."""


class InsufficientHistoryError(DataValidationError):
    """Too few rows for the requested ``sequence_length`` and splits."""


class FetchError(MakeUsRichError, RuntimeError):
    """Fetching from the exchange failed after the bounded retries."""
