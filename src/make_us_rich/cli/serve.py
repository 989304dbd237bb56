"""``mkrich serve`` and ``mkrich predict``: the predictor and its client."""

from __future__ import annotations

import argparse
import json
import os

from make_us_rich.cli.common import DEFAULT_SOURCE, _add_store_option
from make_us_rich.errors import ConfigError


def _check_port_free(port: int, host: str = "127.0.0.1") -> None:
    """A taken port is a one-line error that says what to do, before the server starts."""
    from make_us_rich.ports import port_in_use

    if port_in_use(port, host):
        raise ConfigError(
            f"port {port} is in use (another mkrich serve?): stop it, or choose another "
            "port with --port N (make serve PORT=N)"
        )


def cmd_serve(args: argparse.Namespace) -> int:
    import warnings

    # kserve answers through fastapi's ORJSONResponse, which fastapi now deprecates: a warning
    # at the first request of every server start that the user can do nothing about
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated", module="fastapi")
    from make_us_rich.serving.server import serve

    symbols = [x.strip() for x in args.symbols.split(",") if x.strip()] if args.symbols else None
    host = f"[{args.host}]" if ":" in args.host else args.host
    where = " (all interfaces)" if args.host in ("0.0.0.0", "::") else ""
    _check_port_free(args.port, args.host)

    def announce(models) -> None:
        print(f"serving {', '.join(m.name for m in models)} from {args.store} on "
              f"http://{host}:{args.port}{where}", flush=True)

    serve(args.store, symbols, host=args.host, port=args.port, reload_interval=args.reload_interval,
          max_batch=args.max_batch, max_body=args.max_body, body_timeout=args.body_timeout,
          header_timeout=args.header_timeout,
          on_listen=announce)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from make_us_rich.predict_client import predict_next_close

    result = predict_next_close(
        args.url, args.symbol, source=args.source, api_url=args.api_url,
        token=os.environ.get("MKRICH_SERVING_TOKEN"), end=args.end,
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['symbol']} next close ({result['for_hour']}): {result['predicted_close']:,.2f}")
    q = result.get("quantiles")
    if q:
        print(f"  50 %: {q['q25']:,.2f} - {q['q75']:,.2f}   90 %: {q['q05']:,.2f} - {q['q95']:,.2f}")
    for h in result.get("horizons", [])[1:]:  # the longer horizons the server answers (issue 22)
        q = h["quantiles"]
        print(f"  in {h['hours']} h ({h['for_hour']}): median {q['q50']:,.2f}   50 %: {q['q25']:,.2f} - "
              f"{q['q75']:,.2f}   90 %: {q['q05']:,.2f} - {q['q95']:,.2f}")
    print(f"  last close ({result['last_hour']}): {result['last_close']:,.2f}  "
          f"median change {result['predicted_close'] - result['last_close']:+,.2f}")
    print(f"  model {result['model']} version {result['model_version']} at {args.url}")
    return 0


def add_serve(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the latest models (KServe ModelServer, Open Inference Protocol v1/v2)",
        description="Load the latest accepted model of each symbol from the store and serve "
        "/v2/models/<symbol>-close/infer and /v1/models/<symbol>-close:predict; new versions "
        "are hot-reloaded. Set MKRICH_SERVING_TOKEN to require a bearer token.",
    )
    add_serve_arguments(p)
    p.set_defaults(func=cmd_serve)


def add_serve_arguments(p) -> None:
    """The server's own flags, on ``mkrich serve`` and on the server image's entry point
    (``python -m make_us_rich.serving``, whose parser extends KServe's)."""
    _add_store_option(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens "
                   "it to the network, as the container image does)")
    p.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    p.add_argument("--symbols", default=None,
                   help="comma-separated symbols (default: every symbol with an accepted model in "
                   "the store, and those published later)")
    p.add_argument("--reload-interval", type=float, default=30.0,
                   help="seconds between checks for a new latest model (0: never)")
    p.add_argument("--max-batch", type=int, default=1024, help="largest batch accepted (default 1024)")
    p.add_argument("--max-body", type=int, default=8 * 1024 * 1024, help="largest request body in bytes")
    p.add_argument("--body-timeout", type=float, default=30.0,
                   help="seconds a client may take to send a request body (default 30; then 408)")
    p.add_argument("--header-timeout", type=float, default=10.0,
                   help="seconds a client may take to send a request line and its headers, from "
                   "the connection or the request's first byte (default 10; then 408 and closed)")


def add_predict(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="ask a running server for the next hour's close (features built as in training)",
        description="Load the last window of klines from --source, build the features exactly "
        "as training did, send them to the server at --url (mkrich serve, or a Triton/KServe "
        "endpoint speaking the Open Inference Protocol v2) and print the median forecast of the "
        "next close with its 50 % and 90 % intervals. $MKRICH_SERVING_TOKEN is sent as a bearer "
        "token when set.",
    )
    p.add_argument("--symbol", default="BTCEUR")
    p.add_argument("--url", default="http://127.0.0.1:8080", help="server base URL")
    p.add_argument("--source", default=DEFAULT_SOURCE,
                   help=f"where the last window comes from: binance or sample (default {DEFAULT_SOURCE})")
    p.add_argument("--end", help="last candle's open time (default: latest available)")
    p.add_argument("--api-url", help="Binance REST base URL (default: $BINANCE_API_URL or Binance)")
    p.add_argument("--json", action="store_true", help="print the answer as JSON (for scripts)")
    p.set_defaults(func=cmd_predict)
