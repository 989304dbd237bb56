"""The pipelines a cluster can run, by name, and their compilation: ``hourly-training`` (one
model per symbol) and ``universal-training`` (one model for every symbol, issue 21). The
recurring run keeps one name whichever pipeline it runs, so switching the setting replaces the
hourly retrain instead of adding a second one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from make_us_rich.errors import ConfigError
from make_us_rich.params import DEFAULT_PIPELINE, PIPELINE_NAMES
from make_us_rich.pipelines.hourly_training import (
    PIPELINE_NAME,
    UNIVERSAL_PIPELINE_NAME,
    hourly_training,
    universal_training,
)
from make_us_rich.pipelines.kfp_compat import mark_secret_key_names

#: name -> (pipeline function, display name in the KFP UI)
PIPELINES: dict[str, tuple[Callable, str]] = {
    PIPELINE_NAME: (hourly_training, "make-us-rich hourly training"),
    UNIVERSAL_PIPELINE_NAME: (universal_training, "make-us-rich universal training"),
}


assert tuple(PIPELINES) == PIPELINE_NAMES  # the names the CLI offers (declared in params)
__all__ = ["DEFAULT_PIPELINE", "PIPELINES", "compile_all", "compile_pipeline", "package", "pipeline_named"]


def pipeline_named(name: str) -> Callable:
    """The pipeline function called ``name``, or a ConfigError listing the choices."""
    try:
        return PIPELINES[name][0]
    except KeyError:
        raise ConfigError(f"unknown pipeline {name!r}: choose one of {', '.join(PIPELINES)}") from None


def package(name: str, out_dir: str | Path) -> Path:
    """Compile the pipeline ``name`` to KFP IR YAML (what the API uploads) in ``out_dir``."""
    from kfp import compiler

    path = Path(out_dir) / f"{name}.yaml"
    compiler.Compiler().compile(pipeline_named(name), str(path))
    return path


def compile_pipeline(name: str, out_dir: str | Path, version: str | None = None) -> list[Path]:
    """Write ``<name>.yaml`` (IR, for the UI/API) and ``<name>.k8s.yaml`` (``Pipeline`` +
    ``PipelineVersion`` manifests for ``kubectl apply``)."""
    from kfp import compiler
    from kfp.compiler.compiler_utils import KubernetesManifestOptions

    from make_us_rich import __version__

    function = pipeline_named(name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ir = package(name, out)
    k8s = out / f"{name}.k8s.yaml"
    release = version or __version__
    options = KubernetesManifestOptions(
        pipeline_name=name,
        pipeline_display_name=PIPELINES[name][1],
        pipeline_version_name=f"{name}-v{release.replace('.', '-')}",
        pipeline_version_display_name=f"make-us-rich {release}",
        include_pipeline_manifest=True,
    )
    compiler.Compiler().compile(function, str(k8s), kubernetes_manifest_format=True,
                                kubernetes_manifest_options=options)
    k8s.write_text(mark_secret_key_names(k8s.read_text()))
    return [ir, k8s]


def compile_all(out_dir: str | Path = "pipelines/compiled", version: str | None = None) -> list[Path]:
    """Compile every pipeline of :data:`PIPELINES` into ``out_dir``."""
    return [path for name in PIPELINES for path in compile_pipeline(name, out_dir, version)]
