"""The KFP workarounds of make_us_rich.pipelines.kfp_compat: each test fails loudly when a KFP
upgrade makes a workaround unnecessary (remove it) or breaks it (fix it)."""

from __future__ import annotations

import pytest
from kfp import dsl
from kfp.local import placeholder_utils

from make_us_rich.pipelines.kfp_compat import (
    SECRET_KEY_MARKED,
    mark_secret_key_names,
    resolve_time_placeholders,
)

EXECUTOR_INPUT = {"outputs": {"outputFile": "/tmp/out"}, "inputs": {}}
ARGS = (EXECUTOR_INPUT, "run", "task", "/tmp/root", "job-id", "task-id")


def _resolve(text: str) -> str:
    return placeholder_utils.resolve_individual_placeholder(text, *ARGS)


def test_kfp_local_still_cannot_resolve_the_schedule_time():
    """If this fails, kfp.local resolves the placeholder itself: drop resolve_time_placeholders."""
    try:
        resolved = _resolve(dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER)
    except Exception:
        return
    assert resolved == dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER, (
        f"kfp.local now resolves the schedule time ({resolved!r}): remove the workaround"
    )


def test_the_workaround_resolves_both_time_placeholders_and_is_undone():
    original = placeholder_utils.resolve_individual_placeholder
    with resolve_time_placeholders("2023-12-31T23:00:00Z"):
        assert placeholder_utils.resolve_individual_placeholder(
            f"end={dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER}", *ARGS
        ) == "end=2023-12-31T23:00:00Z"
        assert placeholder_utils.resolve_individual_placeholder(
            dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER, *ARGS
        ) == "2023-12-31T23:00:00Z"
    assert placeholder_utils.resolve_individual_placeholder is original


def test_secret_key_names_are_marked_in_the_compiled_manifest(tmp_path):
    from make_us_rich.pipelines.catalog import compile_pipeline

    _, k8s = compile_pipeline("hourly-training", tmp_path)
    assert SECRET_KEY_MARKED in k8s.read_text()


def test_marking_fails_loudly_when_the_compiler_output_changes():
    with pytest.raises(RuntimeError, match="kfp_compat"):
        mark_secret_key_names("secretKeyRef: {key: AWS_SECRET_ACCESS_KEY}\n")


def test_the_task_hook_still_finds_kfp_locals_dispatcher_and_is_undone():
    """``mkrich run``'s step lines wrap kfp.local's task dispatcher (no public hook in 2.17): if
    this fails, kfp.local changed the function or its keyword arguments; adapt on_task_finished."""
    import inspect

    from kfp.local import task_dispatcher

    from make_us_rich.pipelines.kfp_compat import on_task_finished

    original = task_dispatcher.run_single_task_implementation
    assert {"component_name", "arguments"} <= set(inspect.signature(original).parameters)
    seen = []
    with on_task_finished(lambda kwargs, outputs, status, seconds: seen.append(kwargs)):
        assert task_dispatcher.run_single_task_implementation is not original
    assert task_dispatcher.run_single_task_implementation is original
