"""Stage 5: MinMax scaling to (-1, 1), fit on the train windows only, persisted for inference.

The fitted scaler is saved twice (:func:`save_scaler`):

* ``scaler.pkl`` - the scikit-learn object, what scikit-learn users expect;
* ``scaler.json`` - its parameters as plain JSON, safe to load anywhere (no pickle), and
  round-tripping exactly (:func:`load_scaler` rebuilds an identical ``MinMaxScaler``).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from sklearn.preprocessing import MinMaxScaler

from make_us_rich.errors import ConfigError
from make_us_rich.io import atomic_write_bytes

FEATURE_RANGE = (-1.0, 1.0)
SCALER_PICKLE = "scaler.pkl"
SCALER_JSON = "scaler.json"
_FORMAT = "make-us-rich/minmax-scaler/v1"


def scaler_to_dict(scaler: MinMaxScaler) -> dict[str, Any]:
    """The fitted parameters of a ``MinMaxScaler`` as JSON-ready values."""
    if not hasattr(scaler, "scale_"):
        raise ConfigError("the scaler is not fitted; fit it on the train windows first (make_us_rich.preprocessing.windows.fit_input_scaler)")
    names = getattr(scaler, "feature_names_in_", None)
    return {
        "format": _FORMAT,
        "sklearn_version": sklearn.__version__,
        "feature_range": [float(v) for v in scaler.feature_range],
        "feature_names": [str(n) for n in names] if names is not None else None,
        "n_samples_seen": int(scaler.n_samples_seen_),
        "data_min": scaler.data_min_.tolist(),
        "data_max": scaler.data_max_.tolist(),
        "data_range": scaler.data_range_.tolist(),
        "scale": scaler.scale_.tolist(),
        "min": scaler.min_.tolist(),
        "clip": bool(scaler.clip),
    }


def scaler_from_dict(params: dict[str, Any]) -> MinMaxScaler:
    """Rebuild a fitted ``MinMaxScaler`` from :func:`scaler_to_dict` output (bit-exact)."""
    if params.get("format") != _FORMAT:
        raise ConfigError(f"not a make-us-rich scaler JSON (format {params.get('format')!r})")
    scaler = MinMaxScaler(feature_range=tuple(params["feature_range"]), clip=params["clip"])
    for attr, key in (
        ("data_min_", "data_min"),
        ("data_max_", "data_max"),
        ("data_range_", "data_range"),
        ("scale_", "scale"),
        ("min_", "min"),
    ):
        setattr(scaler, attr, np.asarray(params[key], dtype=np.float64))
    scaler.n_features_in_ = len(params["scale"])
    scaler.n_samples_seen_ = params["n_samples_seen"]
    if params.get("feature_names") is not None:
        scaler.feature_names_in_ = np.asarray(params["feature_names"], dtype=object)
    return scaler


def save_scaler(scaler: MinMaxScaler, directory: str | Path) -> tuple[Path, Path]:
    """Write ``scaler.pkl`` and ``scaler.json`` into ``directory``; returns both paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    as_json = json.dumps(scaler_to_dict(scaler), indent=2).encode()
    pkl, js = d / SCALER_PICKLE, d / SCALER_JSON
    atomic_write_bytes(pkl, pickle.dumps(scaler, protocol=pickle.HIGHEST_PROTOCOL))
    atomic_write_bytes(js, as_json)
    return pkl, js


def load_scaler(path: str | Path) -> MinMaxScaler:
    """Load a scaler from ``scaler.json`` (preferred: no pickle) or ``scaler.pkl``.

    A directory means its ``scaler.json``. Only unpickle files you trust.
    """
    p = Path(path)
    if p.is_dir():
        p = p / SCALER_JSON
    if not p.is_file():
        raise ConfigError(f"no scaler at {p}; expected {SCALER_JSON} or {SCALER_PICKLE}")
    if p.suffix == ".json":
        return scaler_from_dict(json.loads(p.read_text()))
    with p.open("rb") as fh:
        scaler = pickle.load(fh)
    if not isinstance(scaler, MinMaxScaler):
        raise ConfigError(f"{p} does not hold a MinMaxScaler")
    return scaler
