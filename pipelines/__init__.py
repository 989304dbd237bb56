"""The Kubeflow pipeline (``make_us_rich.pipelines``): definition, compilation, local runs and
cluster runs/schedules."""

from make_us_rich.pipelines.hourly_training import HOURLY_CRON, PIPELINE_NAME, hourly_training

__all__ = ["HOURLY_CRON", "PIPELINE_NAME", "hourly_training"]
