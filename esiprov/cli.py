"""The ``esiprov`` command: watch, templates, plan, jobs, state, resync.

Errors a user can meet (etcd or the broker unreachable, a bad argument, a bad
template) end in one clear line on stderr and a non-zero exit code, never a
traceback.
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from esiprov import keys, planner, templates
from esiprov.settings import ConfigError, current
from esiprov.store import Store, StoreError

log = logging.getLogger("esiprov")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3


class CommandError(Exception):
    """A user-facing failure: printed as one line, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False))


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns).rstrip())


def _store() -> Store:
    store = Store.connect(current())
    store.ping()
    return store


# --- commands -------------------------------------------------------------------------
def cmd_watch(args: argparse.Namespace) -> int:
    from esiprov.watcher import Watcher
    from tasks import app

    watcher = Watcher(_store(), app)
    signal.signal(signal.SIGTERM, lambda *_: watcher.stop())
    try:
        watcher.run()
    except KeyboardInterrupt:
        watcher.stop()
    return EXIT_OK


def cmd_templates_load(args: argparse.Namespace) -> int:
    schema, found = templates.load_dir(Path(args.directory))
    templates.save(_store(), schema, found)
    print(f"loaded {len(found)} templates and the schema from {args.directory}: "
          + ", ".join(t.id for t in found))
    return EXIT_OK


def cmd_templates_list(args: argparse.Namespace) -> int:
    entries, _ = _store().range(keys.TEMPLATES)
    rows = [{"name": e.key[len(keys.TEMPLATES):], "version": e.value.get("version", "")} for e in entries]
    _print_json(rows) if args.json else _table(rows, ["name", "version"])
    return EXIT_OK


def cmd_templates_show(args: argparse.Namespace) -> int:
    _print_json(templates.read(_store(), args.name).body())
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    store = _store()
    try:
        plan = planner.plan(store, args.type, args.id)
    except planner.PlanError as exc:
        raise CommandError(f"cannot plan {args.type} {args.id}: {exc}")
    if plan is None:
        raise CommandError(f"no config at {keys.config(args.type, args.id)}", EXIT_NOT_FOUND)
    _print_json([job.document() for job in plan.jobs])
    return EXIT_OK


def _job_rows(store: Store, failed_only: bool) -> list[dict[str, Any]]:
    entries, _ = store.range(keys.JOBS)
    failures = {e.key[len(keys.FAILURES):]: e.value for e in store.range(keys.FAILURES)[0]}
    rows = []
    for entry in entries:
        handler, job, attempts = entry.value
        failure = failures.get(job["id"])
        if failed_only and failure is None:
            continue
        rows.append({"id": job["id"], "resource": f"{job['resource_type']}:{job['resource_id']}",
                     "action": job["action"], "handler": handler, "attempts": attempts,
                     "status": "failed" if failure else "pending",
                     "error": (failure or {}).get("error", "")})
    return rows


def cmd_jobs_list(args: argparse.Namespace) -> int:
    rows = _job_rows(_store(), args.failed)
    _print_json(rows) if args.json else _table(rows, ["id", "action", "attempts", "status", "error"])
    return EXIT_OK


def cmd_jobs_show(args: argparse.Namespace) -> int:
    store = _store()
    found = store.value(keys.job(args.job_id))
    if found is None:
        raise CommandError(f"no job {args.job_id} in {keys.JOBS}", EXIT_NOT_FOUND)
    _print_json({"handler": found[0], "attempts": found[2], "job": found[1],
                 "failure": store.value(keys.failure(args.job_id))})
    return EXIT_OK


def cmd_state_show(args: argparse.Namespace) -> int:
    store = _store()
    view = {name: store.value(key(args.type, args.id)) for name, key in (
        ("config", keys.config), ("state", keys.state), ("monitoring", keys.monitoring),
        ("heat_stack", keys.heat_stack), ("workflow", keys.workflow))}
    if view["config"] is None and view["state"] is None:
        raise CommandError(f"{args.type} {args.id}: no config and no state", EXIT_NOT_FOUND)
    _print_json(view)
    return EXIT_OK


def cmd_resync(args: argparse.Namespace) -> int:
    from esiprov.reconcile import config_resources, reconcile
    from tasks import app

    store = _store()
    resources = list(config_resources(store))
    outcomes: dict[str, int] = {}
    for done, (rtype, rid) in enumerate(resources, 1):
        outcome = reconcile(store, app, rtype, rid)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if sys.stderr.isatty():
            print(f"\rresync {done}/{len(resources)}", end="", file=sys.stderr, flush=True)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"resynced {len(resources)} resources: "
          + ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) if outcomes else "no resources")
    return EXIT_OK


# --- parser ---------------------------------------------------------------------------
def _command(sub: Any, name: str, run: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help, description=help)
    parser.set_defaults(run=run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esiprov", description=(
        "Provisioning backend for the ESI resource model: etcd configs -> Heat stacks -> SNMP "
        "monitoring -> etcd state. Configured by ESIPROV_* environment variables (see README)."))
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _command(sub, "watch", cmd_watch, "watch /config and start a workflow for every resource version")

    tpl = sub.add_parser("templates", help="load, list and show heat templates in etcd").add_subparsers(
        dest="templates_command", required=True, metavar="SUBCOMMAND")
    load = _command(tpl, "load", cmd_templates_load, "write the templates and schema of a directory to etcd")
    load.add_argument("directory", nargs="?", default=str(templates.SHIPPED),
                      help="directory of *.yaml templates and schema.yaml (default: the shipped ones)")
    listing = _command(tpl, "list", cmd_templates_list, "list the templates in etcd")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _command(tpl, "show", cmd_templates_show, "print one template from etcd").add_argument("name")

    plan = _command(sub, "plan", cmd_plan, "print the job documents the planner would write now (writes nothing)")
    plan.add_argument("type", help="resource type, singular (ese_physical_port)")
    plan.add_argument("id", help="resource id")

    jobs = sub.add_parser("jobs", help="inspect and requeue jobs").add_subparsers(
        dest="jobs_command", required=True, metavar="SUBCOMMAND")
    jl = _command(jobs, "list", cmd_jobs_list, "list the jobs in /jobs/all")
    jl.add_argument("--failed", action="store_true", help="only jobs that failed for good")
    jl.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _command(jobs, "show", cmd_jobs_show, "print one job document and its failure").add_argument("job_id")

    state = sub.add_parser("state", help="show a resource's state").add_subparsers(
        dest="state_command", required=True, metavar="SUBCOMMAND")
    show = _command(state, "show", cmd_state_show, "config, state, monitoring and stack of one resource")
    show.add_argument("type", help="resource type, singular (ese_physical_port)")
    show.add_argument("id", help="resource id")

    _command(sub, "resync", cmd_resync, "re-drive every resource whose config version has no final state")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return args.run(args)
    except CommandError as exc:
        print(f"esiprov: {exc}", file=sys.stderr)
        return exc.code
    except (StoreError, ConfigError, templates.TemplateError) as exc:
        print(f"esiprov: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
