"""Stages 2-5 of the loop as pure functions: features, split, windows, scaling.

Each stage is one module with no framework imports (numpy, pandas, scikit-learn only), so the
KFP components and the trainer call the very same code; :mod:`make_us_rich.stages` chains them.
The scaling helpers are imported on first use: scikit-learn takes a second to import, and the
CLI and the serving layer read constants from this package without needing it.
"""

from make_us_rich.preprocessing.features import (
    CALENDAR_FEATURES,
    FEATURE_COLUMNS,
    PRICE_FEATURES,
    build_features,
    extract_features_from_dataset,
)
from make_us_rich.preprocessing.sequences import contiguous_windows, create_sequences
from make_us_rich.preprocessing.split import DEFAULT_TEST_SIZE, DEFAULT_VAL_SIZE, split_data

_SCALING = ("load_scaler", "save_scaler", "scaler_from_dict", "scaler_to_dict")


def __getattr__(name: str):
    if name in _SCALING:
        from make_us_rich.preprocessing import scaling

        return getattr(scaling, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CALENDAR_FEATURES",
    "DEFAULT_TEST_SIZE",
    "DEFAULT_VAL_SIZE",
    "FEATURE_COLUMNS",
    "PRICE_FEATURES",
    "build_features",
    "contiguous_windows",
    "create_sequences",
    "extract_features_from_dataset",
    "load_scaler",
    "save_scaler",
    "scaler_from_dict",
    "scaler_to_dict",
    "split_data",
]
