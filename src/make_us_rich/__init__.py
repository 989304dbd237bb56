"""make-us-rich: an hourly retrained crypto price forecaster, from Binance klines to KServe.

The package holds the plain-Python ML logic of every stage of the loop; KFP components and
the KServe predictor are thin shells around it. Importing this package (or its ``data`` and
preprocessing modules) never imports TensorFlow.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("make-us-rich")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
