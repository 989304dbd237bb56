"""Stages 2-5 of the loop as pure functions: features -> split -> scale -> sequences.

Each stage is one module with no framework imports (numpy, pandas, scikit-learn only), so the
KFP components and the trainer call the very same code. :func:`preprocess` chains them.
"""

from make_us_rich.preprocessing.features import (
    CALENDAR_FEATURES,
    FEATURE_COLUMNS,
    PRICE_FEATURES,
    extract_features_from_dataset,
)
from make_us_rich.preprocessing.pipeline import (
    PreprocessResult,
    check_history,
    make_windows,
    preprocess,
    required_rows,
)
from make_us_rich.preprocessing.scaling import (
    load_scaler,
    save_scaler,
    scale_data,
    scaler_from_dict,
    scaler_to_dict,
)
from make_us_rich.preprocessing.sequences import (
    contiguous_windows,
    create_sequences,
    split_sequences,
)
from make_us_rich.preprocessing.split import split_data

__all__ = [
    "CALENDAR_FEATURES",
    "FEATURE_COLUMNS",
    "PRICE_FEATURES",
    "PreprocessResult",
    "check_history",
    "contiguous_windows",
    "create_sequences",
    "extract_features_from_dataset",
    "load_scaler",
    "make_windows",
    "preprocess",
    "required_rows",
    "save_scaler",
    "scale_data",
    "scaler_from_dict",
    "scaler_to_dict",
    "split_data",
    "split_sequences",
]
