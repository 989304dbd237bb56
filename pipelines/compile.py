"""Compile the pipeline: the IR YAML (for the KFP UI and API) and the Kubernetes manifests of
KFP's native-manifest mode; :func:`package` is what ``mkrich submit``/``schedule`` upload."""

from __future__ import annotations

from pathlib import Path

from make_us_rich.pipelines.hourly_training import PIPELINE_NAME, hourly_training
from make_us_rich.pipelines.kfp_compat import mark_secret_key_names


def compile_pipeline(out_dir: str | Path = "pipelines/compiled", version: str | None = None) -> list[Path]:
    """Write ``hourly-training.yaml`` (IR, for the UI/API) and ``hourly-training.k8s.yaml``
    (``Pipeline`` + ``PipelineVersion`` manifests for ``kubectl apply``)."""
    from kfp import compiler
    from kfp.compiler.compiler_utils import KubernetesManifestOptions

    from make_us_rich import __version__

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ir = out / f"{PIPELINE_NAME}.yaml"
    compiler.Compiler().compile(hourly_training, str(ir))
    k8s = out / f"{PIPELINE_NAME}.k8s.yaml"
    options = KubernetesManifestOptions(
        pipeline_name=PIPELINE_NAME,
        pipeline_display_name="make-us-rich hourly training",
        pipeline_version_name=f"{PIPELINE_NAME}-v{(version or __version__).replace('.', '-')}",
        pipeline_version_display_name=f"make-us-rich {version or __version__}",
        include_pipeline_manifest=True,
    )
    compiler.Compiler().compile(
        hourly_training, str(k8s), kubernetes_manifest_format=True,
        kubernetes_manifest_options=options,
    )
    k8s.write_text(mark_secret_key_names(k8s.read_text()))
    return [ir, k8s]


def package(folder: str | Path) -> str:
    """The pipeline compiled to ``folder/hourly-training.yaml`` (the package a run is made of)."""
    from kfp import compiler

    path = Path(folder) / f"{PIPELINE_NAME}.yaml"
    compiler.Compiler().compile(hourly_training, str(path))
    return str(path)
