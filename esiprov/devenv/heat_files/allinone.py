"""Run heat-api (noauth pipeline) and heat-engine in ONE process, for local tests.

Usage: python -W ignore allinone.py --bind 127.0.0.1 --port PORT -- --config-file heat.conf

Why a launcher of our own: Heat 27 ships no heat-all, and stock heat-engine
always forks workers (cotyledon), while the in-memory ``fake://`` RPC driver only
connects an RPC client and servers that share one process. So this script
starts ``EngineService`` in-process and serves the stock ``heat-api`` paste app
from a threaded wsgiref server. It relies on Heat internals (the call order
below matters), which is why requirements.txt pins the whole environment.
SIGTERM or SIGINT stops the HTTP server, then the engine.
"""
from __future__ import annotations

import argparse
import os
import signal
import socketserver
import sys
import threading
from types import FrameType
from wsgiref import simple_server

from oslo_service import backend

backend.init_backend(backend.BackendType.THREADING)  # before anything imports oslo.service

import oslo_i18n  # noqa: E402
from heat import version  # noqa: E402
from heat.common import config, messaging  # noqa: E402
from heat.rpc import api as rpc_api  # noqa: E402
from oslo_config import cfg  # noqa: E402
from oslo_log import log as logging  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sqlite_hardening import harden_sqlite  # noqa: E402

CONF = cfg.CONF
ENGINE_STOP_GRACE = 5.0


class ThreadingWSGIServer(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    """One thread per request: heatclient follows 302s and polls concurrently."""

    daemon_threads = True
    allow_reuse_address = True


class QuietHandler(simple_server.WSGIRequestHandler):
    """No access log: polling would flood the log that failures are read from."""

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("heat_args", nargs=argparse.REMAINDER, help="-- then heat options")
    args = parser.parse_args()
    heat_args = args.heat_args[1:] if args.heat_args[:1] == ["--"] else args.heat_args

    oslo_i18n.enable_lazy()
    logging.register_options(CONF)
    CONF(heat_args, project="heat", prog="heat-api",
         version=version.version_info.version_string())
    logging.setup(CONF, "heat")
    if CONF.database.connection.startswith("sqlite"):
        harden_sqlite()
    config.set_config_defaults()
    messaging.setup()

    # Importing the engine registers options (auth_encryption_key) that the
    # sanity check reads, so it must come after messaging and before the check.
    from heat.engine import service as engine_service
    config.startup_sanity_check()
    engine = engine_service.EngineService(CONF.host, rpc_api.ENGINE_TOPIC)
    engine.start()

    httpd = simple_server.make_server(args.bind, args.port, config.load_paste_app("heat-api"),
                                      server_class=ThreadingWSGIServer,
                                      handler_class=QuietHandler)

    def _stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever() to return: never call it on that thread.
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"heat all-in-one listening on http://{args.bind}:{args.port}/v1", flush=True)
    httpd.serve_forever()
    engine.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
