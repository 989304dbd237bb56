"""``mkrich publish`` and ``mkrich versions``: the model store."""

from __future__ import annotations

import argparse

from make_us_rich.cli.common import _add_store_option
from make_us_rich.cli.printing import _scores_line
from make_us_rich.errors import ConfigError


def cmd_publish(args: argparse.Namespace) -> int:
    from make_us_rich.contract import model_name as contract_model_name
    from make_us_rich.observability import push_publish
    from make_us_rich.store import ModelStore
    from make_us_rich.store.model_store import UNIVERSAL_MODEL

    store = ModelStore(args.store, keep=args.keep)
    result = store.publish(args.artifacts, args.symbol, allow_contract_change=bool(args.allow_contract_change),
                           shared_model=args.shared_model)
    if push_publish(store, result.symbol, args.artifacts, version=result.version):
        print("  metrics pushed to the Pushgateway")
    print(f"{result.symbol} {result.version}: {result.status.upper()} -> {result.uri}")
    for reason in result.reasons:
        print(f"  gate: {reason}")
    if result.latest:
        triton_name = UNIVERSAL_MODEL if result.shared else contract_model_name(result.symbol)
        print(f"  latest -> {result.version}; Triton: {store.triton_uri}/{triton_name}/{result.triton_version}/model.onnx")
        if result.shared:
            print(f"  model shared by every symbol of the universal model: {result.shared}")
        if result.contract_changes:
            print(f"  serving contract changed ({'; '.join(result.contract_changes)}): running servers keep "
                  "the previous model until restarted; tell the clients")
    else:
        print("  not promoted: latest is unchanged")
    if result.removed_versions:
        print(f"  retention (keep {args.keep}): removed {', '.join(result.removed_versions)}")
    return 0 if result.status == "accepted" or not args.fail_on_reject else 3


def cmd_versions(args: argparse.Namespace) -> int:
    from make_us_rich.store import ModelStore
    from make_us_rich.store.backends import LocalBackend

    store = ModelStore(args.store)
    if isinstance(store.backend, LocalBackend) and not store.backend.root.is_dir():
        raise ConfigError(f"no model store at {store.backend.root}: check --store (or "
                          "$MKRICH_STORE); `mkrich run` or `mkrich publish` creates one")
    latest = store.pointer(args.symbol)
    versions = store.manifests(args.symbol)
    if not versions:
        print(f"no versions of {args.symbol} in {store.uri}")
        return 0
    print(f"{'version':<36} {'status':<10} {'triton':>14}  test scores")
    for m in versions:
        mark = "  <- latest" if latest is not None and m.version == latest.version else ""
        print(f"{m.version:<36} {m.status:<10} {m.triton_version or '':>14}  {_scores_line(m.scores)}{mark}")
    return 0


def add_publish(sub) -> None:
    from make_us_rich.params import BY_NAME, add_arguments

    p = sub.add_parser(
        "publish",
        help="publish `mkrich train` artifacts to the model store (through the gate)",
        description="Upload a trained model as a new immutable version; if it passed the "
        "promotion gate it becomes `latest` and enters the Triton repository view, otherwise it "
        "is stored as rejected and latest is unchanged.",
    )
    p.add_argument("artifacts", help="folder written by `mkrich train --out`")
    p.add_argument("--symbol", required=True, help="trading pair of the model, e.g. BTCEUR")
    _add_store_option(p)
    keep = BY_NAME["keep"]
    p.add_argument("--keep", type=int, default=keep.default, help=f"{keep.help} (default {keep.default})")
    p.add_argument("--fail-on-reject", action="store_true", help="exit 3 when the gate rejected the model")
    add_arguments(p, (BY_NAME["allow_contract_change"],))
    p.add_argument("--shared-model", metavar="DIR",
                   help="the universal model folder (`mkrich train --symbols ... --out DIR`) the artifacts "
                   "were evaluated from: its files are stored once, shared by every symbol's version")
    p.set_defaults(func=cmd_publish)


def add_versions(sub) -> None:
    p = sub.add_parser(
        "versions", help="list a symbol's model versions in the store",
        description="Every version of a symbol's model in the store, oldest first: its status "
        "(accepted, rejected), its Triton version and its test scores (pinball ratios against "
        "the empirical quantiles and GARCH-t, 90 % coverage, median RMSE against persistence); "
        "the latest one is marked. Over time: mkrich runs models.",
    )
    p.add_argument("--symbol", default="BTCEUR")
    _add_store_option(p)
    p.set_defaults(func=cmd_versions)
