"""Every parameter is declared once (make_us_rich.params / TrainConfig): the pipeline's
signature, the train component's inputs and the CLI's flags must agree with it exactly."""

from __future__ import annotations

import inspect
from dataclasses import fields

from make_us_rich.cli import build_parser
from make_us_rich.params import GATE_PARAMS, PIPELINE_PARAMS, TRAIN_PARAMS
from make_us_rich.pipelines.hourly_training import hourly_training
from make_us_rich.training import TrainConfig

#: Pipeline parameters that are not run settings but where the run goes (declared in the
#: pipeline itself, cluster side).
CLUSTER_ONLY = {"symbols", "source", "store_uri", "s3_endpoint", "s3_region", "s3_secret", "rollout_isvc",
                 "dashboard_url"}


def _subparser(name: str):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices[name]


def test_pipeline_signature_is_the_declared_parameters():
    sig = inspect.signature(hourly_training.pipeline_func)
    declared = {p.name: p for p in PIPELINE_PARAMS}
    assert set(sig.parameters) - CLUSTER_ONLY == set(declared)
    for name, p in declared.items():
        param = sig.parameters[name]
        assert param.annotation in (p.pipeline_type, p.pipeline_type.__name__), name
        assert param.default == p.pipeline_default, name


def test_train_component_takes_every_trainconfig_field():
    from make_us_rich.components import train_lstm

    inputs = set(train_lstm.component_spec.inputs) - {"sequences", "scaler", "train"}
    assert inputs == {f.name for f in fields(TrainConfig)}


def test_trainconfig_defaults_are_the_declared_ones():
    config = TrainConfig()
    for p in TRAIN_PARAMS:
        assert getattr(config, p.name) == p.default


def test_cli_flags_are_generated_from_the_declarations():
    for command in ("run", "submit", "schedule"):
        dests = {a.dest for a in _subparser(command)._actions}
        assert {p.name for p in PIPELINE_PARAMS} <= dests, command
    train = {a.option_strings[0]: a for a in _subparser("train")._actions if a.option_strings}
    for p in (*TRAIN_PARAMS, *GATE_PARAMS):
        assert p.cli_flag in train and train[p.cli_flag].dest == p.name
        assert p.help.split(" (")[0][:20] in train[p.cli_flag].help
        if p.type is bool:  # and its --no- switch
            assert train["--no-" + p.cli_flag[2:]].dest == p.name


def test_cli_values_reach_the_pipeline_typed(tmp_path):
    from make_us_rich.cli import _pipeline_params

    args = build_parser().parse_args(
        ["run", "--units", "16", "--inputs", "bar_range,log_return", "--median", "learned",
         "--blend-har", "false", "--epochs", "3"]
    )
    params = _pipeline_params(args)
    assert params["lstm_units"] == 16 and params["inputs"] == "bar_range,log_return"
    assert params["median"] == "learned" and params["blend_har"] is False and params["max_epochs"] == 3
    assert "sequence_length" not in params  # unset: the pipeline's (declared) default applies
