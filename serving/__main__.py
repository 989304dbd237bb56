"""``python -m make_us_rich.serving``: ``mkrich serve`` as the server image's entry point.

Its parser extends KServe's model-server parser, as KServe's own servers do
(``parents=[kserve.model_server.parser]``), so that a flag a KServe user passes is understood
rather than rejected as unknown: ``--http_port`` is the port. The KServe flags this server does
not honour (gRPC, several workers, TLS, a transformer's predictor, ...) are refused by name when
set, never silently ignored.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence

#: KServe's flags this server honours; any other KServe flag set to a non-default value is refused.
HONOURED = ("http_port",)
#: values of KServe flags that say what this server does anyway (REST only, one worker)
AS_IT_IS = {"enable_grpc": False, "workers": 1}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    """The entry point's parser, and KServe's defaults (to tell which of its flags were set)."""
    from kserve.model_server import parser as kserve_parser

    from make_us_rich.cli.serve import add_serve_arguments

    parser = argparse.ArgumentParser(
        prog="python -m make_us_rich.serving", parents=[kserve_parser],
        description="Serve the latest accepted model of each symbol (mkrich serve); KServe's "
        "model-server flags are accepted where this server honours them (--http_port).")
    add_serve_arguments(parser)
    return parser, vars(kserve_parser.parse_args([]))


def main(argv: Sequence[str] | None = None) -> int:
    from make_us_rich.cli.serve import cmd_serve
    from make_us_rich.errors import MakeUsRichError

    parser, kserve_defaults = build_parser()
    args = parser.parse_args(argv)
    flags = {f.lstrip("-").replace("-", "_"): f for f in re.findall(r"--[a-z_-]+", parser.format_usage())}
    unsupported = [flags.get(k, "--" + k) for k, default in kserve_defaults.items()
                   if k not in HONOURED and getattr(args, k) not in (default, AS_IT_IS.get(k, default))]
    if unsupported:
        parser.error(f"{', '.join(unsupported)}: KServe option(s) this server does not support (HTTP/1 "
                     "REST only, one worker; its own options are listed by --help); see docs/serving.md")
    if args.http_port != kserve_defaults["http_port"]:
        if args.port not in (parser.get_default("port"), args.http_port):
            parser.error(f"--http_port {args.http_port} and --port {args.port} disagree: give one of them")
        args.port = args.http_port
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return cmd_serve(args)
    except MakeUsRichError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
