"""Every flag of every ``mkrich`` command reaches the code that uses it (issue 20: ``mkrich train
--coverage-min/--coverage-max`` were once accepted and silently ignored).

Each command is parsed with a value other than its default for every flag it has (generated from
the parser itself, so a flag added later is checked too), and run with the library function it
hands its work to replaced by a recorder: the test stops there and looks for each flag's value,
by name, among the arguments that function received (through the run spec's parts, dicts and
keyword arguments). A flag whose value arrives nowhere fails the test, naming it. The few flags
that only choose how the answer is printed (``--json``, ``--limit``, ``--log``) or the exit code
(``--fail-on-reject``) are skipped where they are, with that reason; the commands of ``mkrich runs``
and ``mkrich console`` are checked too.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest

from make_us_rich.cli import build_parser, main
from make_us_rich.testing import free_port


class Reached(Exception):
    """The command got as far as the function that does its work."""


class Recorder:
    """Replaces library functions: each call's arguments, by parameter name, are kept; the last
    one (``stop``) raises :class:`Reached`, the others return ``result``."""

    def __init__(self, monkeypatch):
        self.monkeypatch = monkeypatch
        self.calls: list[dict[str, Any]] = []
        self.stopped: str | None = None  # the function the command stopped at

    def patch(self, target: Any, name: str, *, result: Any = None, stop: bool = False, through: bool = False):
        original = inspect.unwrap(getattr(target, name))  # a recorder patched again: the function
        signature = inspect.signature(original)

        def record(*args, **kwargs):
            self.calls.append(dict(signature.bind_partial(*args, **kwargs).arguments))
            if stop:
                self.stopped = name
                raise Reached(name)
            return original(*args, **kwargs) if through else result

        record.__wrapped__ = original  # type: ignore[attr-defined]
        self.monkeypatch.setattr(target, name, record)


def _norm(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple) and all(isinstance(v, str | int | float) for v in value):
        return ",".join(str(v) for v in value)
    return value


def leaves(obj: Any, name: str = "", out: set | None = None) -> set:
    """(name, value) of every scalar inside ``obj``: dataclass fields, dict items and keyword
    arguments by their own name; lists of scalars as one comma-separated value."""
    out = set() if out is None else out
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            leaves(getattr(obj, f.name), f.name, out)
    elif hasattr(obj, "model_dump"):  # pydantic settings
        leaves(obj.model_dump(), name, out)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            leaves(value, str(key), out)
    elif isinstance(obj, list | tuple) and not all(isinstance(v, str | int | float) for v in obj):
        for value in obj:
            leaves(value, name, out)
    else:
        value = _norm(obj)
        try:
            hash(value)
        except TypeError:
            return out
        out.add((name, value))
    return out


#: values for flags that must be valid to get through the command (others are generated)
VALUES = {
    "source": "binance", "symbol": "ETHUSDT", "symbols": "ETHUSDT,SOLUSDT", "interval": "4h",
    "api_url": "http://127.0.0.1:9/api", "end": "2023-06-30", "days": 12.5, "out": "out-dir",
    "preset": "tiny", "tensorboard_dir": "tb-dir", "warm_start": "warm-dir", "warm_from_store": "warm-store",
    "horizons": "1,4", "store": "the-store", "host": "http://127.0.0.1:9/pipeline", "url": "http://127.0.0.1:9",
    "namespace": "ns", "experiment": "exp", "token": "tok", "model": "model-dir", "pipeline_root": "root-dir",
    "notify_url": "http://127.0.0.1:9/hook", "s3_endpoint": "http://127.0.0.1:9", "s3_region": "eu-west-3",
    "rollout_isvc": "isvc", "dashboard_url": "http://127.0.0.1:9/ui", "cron": "0 30 * * * *",
    "artifacts": "artifacts-dir", "shared_model": "shared-dir", "pipeline": "universal-training",
    "history_days": 401.5, "db": "sqlite:///flags-test.db", "inference_url": "http://127.0.0.1:9/v2",
    "email": "admin@example.com", "id": "run-id", "root": "runs-root", "log": "train-lstm",
}
#: flags that need no value of their own here (or are checked apart)
SKIP = {"help", "verbose", "debug", "version", "start"}  # --start: exclusive with --days, checked below


def _value(action: argparse.Action, dest: str) -> list[str]:
    """Command-line words that set ``action`` to something other than its default."""
    flag = action.option_strings[0] if action.option_strings else None
    if isinstance(action, argparse._StoreTrueAction):
        return [flag]
    if isinstance(action, argparse._StoreFalseAction):
        return []  # the --no-X twin of a switch: the switch itself is given
    if action.const is True and action.nargs == "?":  # a --flag/--no-flag switch, default None (=True)
        return [flag, "false"] if dest not in ("universal",) else [flag]
    if dest in VALUES:
        value = VALUES[dest]
    elif action.choices:
        value = next(c for c in action.choices if c != action.default)
    else:
        from make_us_rich.params import BY_NAME, UNIVERSAL_PARAMS

        param = BY_NAME.get(dest) or next((p for p in UNIVERSAL_PARAMS if p.name == dest), None)
        default = param.default if param is not None else action.default
        if isinstance(default, tuple):
            value = ",".join(default[:1])
        elif isinstance(default, bool):
            raise AssertionError(f"{flag}: a boolean that is no switch")
        elif isinstance(default, int):
            value = default + 3
        elif isinstance(default, float):
            value = round(default * 1.5 + 0.01, 6)
        else:
            raise AssertionError(f"{flag}: add a value for it to VALUES")
    words = [str(value)]
    return [flag, *words] if flag else words


def parser_of(argv: list[str]) -> argparse.ArgumentParser:
    """The (sub)parser of the command that ``argv`` starts with (``runs show``: show's)."""
    p = build_parser()
    for word in argv:
        sub = next((a for a in p._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or word not in sub.choices:
            break
        p = sub.choices[word]
    return p


def command_line(command: list[str], skip: set[str] = frozenset()) -> list[str]:
    p = parser_of(command)
    argv = list(command)
    for action in p._actions:
        if action.dest in SKIP | set(skip) or isinstance(action, argparse._SubParsersAction):
            continue
        argv += _value(action, action.dest)
    return argv


def check(argv: list[str], recorder: Recorder, aliases: dict[str, str] | None = None,
          skip: set[str] = frozenset()):
    """Run ``argv``; every flag's parsed value must be among the recorded arguments."""
    aliases = aliases or {}
    args = build_parser().parse_args(argv)
    defaults = build_parser().parse_args(argv[:1] + [w for w in _required(argv)])
    with pytest.raises(Reached):
        main(argv)
    found = set()
    for call in recorder.calls:
        leaves(call, out=found)
    missing = []
    own = {a.dest for a in parser_of(argv)._actions}  # not a parent command's (console's --port)
    for dest, value in vars(args).items():
        if dest not in own or dest in SKIP | {"no_progress"} | set(skip) or dest.endswith("_command"):
            continue
        required = dest in ("out", "host", "model", "artifacts") or (argv[0] == "publish" and dest == "symbol")
        assert required or value != getattr(defaults, dest, None), f"{dest}: the test gives its default"
        if (aliases.get(dest, dest), _norm(value)) not in found:
            missing.append(f"{dest}={value!r}")
    if "no_progress" in vars(args):
        assert ("progress", False) in found, "--no-progress does not reach the code"
    assert not missing, f"{argv[0]}: flags that reach nothing: {missing}"
    return found


def _required(argv: list[str]) -> list[str]:
    """The required arguments of ``argv`` (to parse the defaults of the others)."""
    keep = []
    for flag in ("--out", "--host", "--model"):
        if flag in argv:
            keep += [flag, argv[argv.index(flag) + 1]]
    if argv[0] == "publish":
        keep += [argv[1], "--symbol", "X"]
    return keep


@pytest.fixture
def recorder(monkeypatch):
    return Recorder(monkeypatch)


def test_train_flags_reach_the_run_spec(recorder):
    """The per-symbol model: data, training and gate flags arrive in the spec run_stages gets
    (--coverage-min and --coverage-max first: they were once dropped)."""
    from make_us_rich import stages

    recorder.patch(stages, "run_stages", stop=True)
    universal_only = {"symbols", "warm_start", "warm_from_store", "concurrency", "time_budget", "horizons"}
    argv = command_line(["train"], skip=universal_only)
    assert "--coverage-min" in argv and "--coverage-max" in argv
    found = check(argv, recorder, {"days": "lookback_days", "out": "out_dir"},
                  skip=universal_only | {"preset"})
    assert ("coverage_min", float(argv[argv.index("--coverage-min") + 1])) in found


def test_train_preset_and_start_reach_the_run(recorder):
    from make_us_rich import stages
    from make_us_rich.training import preset

    recorder.patch(stages, "run_stages", stop=True)
    with pytest.raises(Reached):
        main(["train", "--preset", "tiny", "--start", "2023-01-02", "--out", "x"])
    call = recorder.calls[-1]
    assert call["spec"].train == preset("tiny") and call["start"] == "2023-01-02"


def test_universal_train_flags_reach_run_universal(recorder):
    from make_us_rich import stages

    recorder.patch(stages, "run_universal", stop=True)
    check(command_line(["train"]), recorder,
          {"days": "lookback_days", "out": "out_dir", "warm_start": "init_dir", "warm_from_store": "warm_store"},
          skip={"symbol", "preset"})  # --symbol: the per-symbol model's (above)


def test_data_command_flags(recorder):
    import make_us_rich.data as data
    from make_us_rich import stages

    klines = (None, None)
    recorder.patch(data, "load_klines", result=klines)
    recorder.patch(data, "write_klines_csv", stop=True)
    check(command_line(["fetch"]), recorder, {"days": "days", "out": "path"})

    recorder.calls.clear()
    recorder.patch(stages, "run_stages", stop=True)
    check(command_line(["preprocess"]), recorder, {"out": "out_dir"})


def test_evaluate_flags(recorder):
    import make_us_rich.data as data
    import make_us_rich.evaluation as evaluation

    recorder.patch(evaluation, "load_window", through=True)
    recorder.patch(data, "load_klines", result=(None, None))
    recorder.patch(evaluation, "evaluate_folder", stop=True)
    check(command_line(["evaluate"]), recorder, {"model": "model_dir", "out": "out_dir"})


def test_store_command_flags(recorder, monkeypatch):
    import make_us_rich.store as store

    class Store:
        backend = None

        def __init__(self, uri, keep=None):
            recorder.calls.append({"uri": uri, "keep": keep})

        def publish(self, artifacts, symbol, **kw):
            recorder.calls.append({"artifacts": artifacts, "symbol": symbol, **kw})
            raise Reached("publish")

        def pointer(self, symbol):
            recorder.calls.append({"symbol": symbol})
            raise Reached("pointer")

    monkeypatch.setattr(store, "ModelStore", Store)
    argv = command_line(["publish"])
    # --fail-on-reject decides the exit code after publishing: tests/store checks it
    check(argv, recorder, {"store": "uri"}, skip={"fail_on_reject"})
    recorder.calls.clear()
    check(command_line(["versions"]), recorder, {"store": "uri"})


def test_serving_command_flags(recorder):
    import make_us_rich.predict_client as predict_client
    import make_us_rich.serving.server as server

    recorder.patch(server, "serve", stop=True)
    argv = command_line(["serve"])
    argv[argv.index("--host") + 1] = "localhost"
    argv[argv.index("--port") + 1] = str(free_port())
    check(argv, recorder, {"store": "store_uri"})

    recorder.calls.clear()
    recorder.patch(predict_client, "predict_next_close", stop=True)
    check(command_line(["predict"]), recorder, skip={"json"})  # --json: how the answer is printed


def test_pipeline_command_flags(recorder):
    import make_us_rich.pipelines.cluster as cluster
    import make_us_rich.pipelines.local as local
    import make_us_rich.preflight as preflight

    recorder.patch(preflight, "check_run", result={})
    recorder.patch(local, "run_local", stop=True)
    check(command_line(["run"]), recorder, {"store": "store_uri"})

    recorder.patch(preflight, "check_source")
    for command in ("submit", "schedule"):
        recorder.calls.clear()
        recorder.patch(cluster, command, stop=True)
        check(command_line([command]), recorder, {"store": "store_uri"})
    recorder.calls.clear()
    recorder.patch(cluster, "unschedule", stop=True)
    check(command_line(["unschedule"]), recorder)


def test_a_dropped_flag_fails_the_check(recorder, monkeypatch):
    """The check can fail: with the gate's coverage flags read but not passed on (the old bug),
    ``mkrich train`` is caught."""
    from make_us_rich import params, stages

    recorder.patch(stages, "run_stages", stop=True)
    monkeypatch.setattr(params, "GATE_PARAMS", tuple(p for p in params.GATE_PARAMS if p.name == "gate_tolerance"))
    monkeypatch.setattr(params, "add_arguments", _with_coverage(params.add_arguments))
    universal_only = {"symbols", "warm_start", "warm_from_store", "concurrency", "time_budget", "horizons"}
    argv = command_line(["train"], skip=universal_only)
    assert "--coverage-min" in argv
    with pytest.raises(AssertionError, match=r"flags that reach nothing: \['coverage_min="):
        check(argv, recorder, {"days": "lookback_days", "out": "out_dir"}, skip=universal_only | {"preset"})


def _with_coverage(add_arguments):
    """add_arguments that still registers --coverage-min when GATE_PARAMS lacks it."""

    def add(parser, params_):
        add_arguments(parser, params_)
        names = {p.name for p in params_}
        if "gate_tolerance" in names and "coverage_min" not in names:
            parser.add_argument("--coverage-min", type=float)

    return add


def test_runs_command_flags(recorder):
    import make_us_rich.runs as runs

    # --limit, --json and --log choose what of the answer is printed, not what is read
    printing = {"limit", "json", "log"}
    recorder.patch(runs, "list_runs", stop=True)
    check(command_line(["runs"]), recorder, skip=printing)
    recorder.calls.clear()
    recorder.patch(runs, "find_run", stop=True)
    check(command_line(["runs", "show"]), recorder, {"id": "run_id"}, skip=printing)
    recorder.calls.clear()
    recorder.patch(runs, "model_history", stop=True)
    check(command_line(["runs", "models"]), recorder, {"store": "store_uri"}, skip=printing)


def test_console_command_flags(recorder, monkeypatch):
    import make_us_rich.console.cli as console_cli

    recorder.patch(console_cli, "serve", stop=True)
    recorder.patch(console_cli, "run_with_server", stop=True)
    argv = command_line(["console"])
    check(argv, recorder, {"db": "db_url", "api_url": "binance_api_url"}, skip={"with_server"})
    assert "--with-server" in argv and recorder.stopped == "run_with_server"
    with pytest.raises(Reached):  # without --with-server: the console alone
        main([w for w in argv if w != "--with-server"])
    assert recorder.stopped == "serve"

    recorder.calls.clear()
    recorder.patch(console_cli, "_migrated_engine", stop=True)
    check(command_line(["console", "migrate"]), recorder, {"db": "url"})
    recorder.calls.clear()
    monkeypatch.setenv("MKRICH_CONSOLE_ADMIN_PASSWORD", "a-long-enough-password")
    recorder.patch(console_cli, "_migrated_engine", result=None)
    recorder.patch(console_cli, "create_admin", stop=True)
    check(command_line(["console", "create-admin"]), recorder, {"db": "url"})
