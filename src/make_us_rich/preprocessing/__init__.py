"""Stages 2-5 of the loop as pure functions: features, split, windows, scaling.

Each stage is one module with no framework imports (numpy, pandas, scikit-learn only), so the
KFP components and the trainer call the very same code; :mod:`make_us_rich.stages` chains them.
"""

from make_us_rich.preprocessing.features import (
    CALENDAR_FEATURES,
    FEATURE_COLUMNS,
    PRICE_FEATURES,
    extract_features_from_dataset,
)
from make_us_rich.preprocessing.scaling import (
    load_scaler,
    save_scaler,
    scaler_from_dict,
    scaler_to_dict,
)
from make_us_rich.preprocessing.sequences import contiguous_windows, create_sequences
from make_us_rich.preprocessing.split import DEFAULT_TEST_SIZE, DEFAULT_VAL_SIZE, split_data

__all__ = [
    "CALENDAR_FEATURES",
    "DEFAULT_TEST_SIZE",
    "DEFAULT_VAL_SIZE",
    "FEATURE_COLUMNS",
    "PRICE_FEATURES",
    "contiguous_windows",
    "create_sequences",
    "extract_features_from_dataset",
    "load_scaler",
    "save_scaler",
    "scaler_from_dict",
    "scaler_to_dict",
    "split_data",
]
