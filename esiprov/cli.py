"""The ``esiprov`` command: watch, templates, plan, jobs (list, show, requeue), state, resync.

Output is a table for people and JSON (``--json``) for scripts. Errors a user can
meet (etcd, the broker or Heat unreachable, a bad argument, a bad template, a
job that cannot be requeued) end in one line on stderr and a meaningful exit
code, never a traceback: 0 ok, 1 failure, 2 bad usage, 3 not found.
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from celery import Celery
from kombu.utils.url import maybe_sanitize_url
from rich import box
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from esiprov import jobstatus, keys, planner, requeue, templates
from esiprov.broker import BROKER_ERRORS
from esiprov.heat import HeatClient, HeatError
from esiprov.model import BadConfig, parse_envelope
from esiprov.settings import ConfigError, current
from esiprov.store import Store, StoreError

if TYPE_CHECKING:
    from esiprov.metrics import MetricsServer
    from esiprov.watcher import Watcher

log = logging.getLogger("esiprov")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3


class CommandError(Exception):
    """A user-facing failure: printed as one line, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


# --- output ---------------------------------------------------------------------------
def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _console(stderr: bool = False) -> Console:
    """Rich on a terminal; piped, tables keep their natural width (no wrapping, no colour)."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, width=None if stream.isatty() else 4096, highlight=False)


def _table(rows: Iterable[dict[str, Any]], columns: Sequence[str], title: str | None = None) -> None:
    table = Table(*(c.upper() for c in columns), box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  title=title, title_justify="left")
    for row in rows:
        table.add_row(*(Text("" if row.get(c) is None else str(row[c])) for c in columns))
    console = _console()
    if console.is_terminal:
        console.print(table)
        return
    with console.capture() as captured:  # piped: no padding after the last column, for grep and awk
        console.print(table)
    print("\n".join(line.rstrip() for line in captured.get().splitlines()))


def _age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _one_line(text: str, limit: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


# --- connections ----------------------------------------------------------------------
def _store() -> Store:
    store = Store.connect(current())
    store.ping()
    return store


def _app() -> Celery:
    from tasks import app  # imported late: only commands that talk to Celery pay for it

    return app


def _sender() -> Celery:
    """The app for a command that sends workflows but never reads a result (watch, resync).

    It has no result backend: with Redis's, every send outside a worker also subscribes to the
    task's result channel (a round trip per task), and once that subscription failed to reconnect
    (the broker restarted) every later send fails until the process restarts.
    """
    app = _app()
    app.conf.result_backend = None
    return app


# --- commands -------------------------------------------------------------------------
def cmd_watch(args: argparse.Namespace) -> int:
    from esiprov.watcher import Watcher

    store = _store()
    watcher = Watcher(store, _sender())
    server = _metrics_server(store, watcher)
    signal.signal(signal.SIGTERM, lambda *_: watcher.stop())
    try:
        watcher.run()
    except KeyboardInterrupt:
        watcher.stop()
    finally:
        if server is not None:
            server.stop()
    return EXIT_OK


def _metrics_server(store: Store, watcher: Watcher) -> MetricsServer | None:
    """/metrics and /healthz of this watcher when ESIPROV_METRICS_ADDRESS is set (esiprov.metrics), else None."""
    address = current().metrics_address
    if address is None:
        return None
    from esiprov import metrics  # imported late: only a watcher that serves metrics pays for it

    return metrics.serve(address, store, watcher)


def cmd_templates_load(args: argparse.Namespace) -> int:
    schema, found = templates.load_dir(Path(args.directory))
    templates.validate(schema, found)  # every problem listed before etcd is even asked
    templates.save(_store(), schema, found)
    print(f"loaded {len(found)} templates and the schema from {args.directory}: "
          + ", ".join(t.id for t in found))
    return EXIT_OK


def cmd_templates_list(args: argparse.Namespace) -> int:
    store = _store()
    rows = []
    for entry in store.range(keys.TEMPLATES)[0]:
        name = entry.key[len(keys.TEMPLATES):]
        rows.append({"name": name, "handler": templates.read(store, name).handler,
                     "version": entry.value.get("version")})
    _print_json(rows) if args.json else _table(rows, ["name", "handler", "version"])
    return EXIT_OK


def cmd_templates_show(args: argparse.Namespace) -> int:
    store = _store()
    if store.get(keys.template(args.name)) is None:
        raise CommandError(f"no template {args.name} in etcd ({keys.template(args.name)})", EXIT_NOT_FOUND)
    template = templates.read(store, args.name)
    if args.json:
        _print_json(template.body())
        return EXIT_OK
    _table([{"param": k, "mapping": json.dumps(v) if not isinstance(v, str) else v}
            for k, v in template.parameter_mappings.items()],
           ["param", "mapping"], title=f"{template.id} ({template.handler})")
    print(template.template_file, end="" if template.template_file.endswith("\n") else "\n")
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


JOB_COLUMNS = ["id", "resource", "action", "handler", "attempts", "status", "age", "error"]


def cmd_jobs_list(args: argparse.Namespace) -> int:
    views = jobstatus.list_jobs(_store(), _app(), args.type, args.failed)
    rows = [view.row() for view in views]
    if args.json:
        _print_json(rows)
    elif not rows:
        print("no failed jobs" if args.failed else "no jobs")
    else:
        _table([{**row, "age": _age(row["age_seconds"]), "error": _one_line(row["error"])} for row in rows],
               JOB_COLUMNS)
    return EXIT_OK


def cmd_jobs_show(args: argparse.Namespace) -> int:
    store, app = _store(), _app()
    view = jobstatus.show_job(store, app, args.job_id)
    if view is None:
        celery = jobstatus.celery_meta(app, args.job_id).get("status")
        raise CommandError(f"no job {args.job_id} in {keys.JOBS} (finished jobs are removed; "
                           f"Celery's last state for it: {celery})", EXIT_NOT_FOUND)
    if args.json:
        _print_json({"id": view.id, "handler": view.handler, "attempts": view.attempts, "status": view.status,
                     "celery_state": view.celery.get("status"), "error": view.error, "failure": view.failure,
                     "job": view.job})
        return EXIT_OK
    row = view.row()
    _table([{"field": k, "value": row[k]} for k in ("id", "resource", "version", "action", "handler", "attempts",
                                                    "status", "celery_state", "error")]
           + [{"field": "age", "value": _age(row["age_seconds"])}], ["field", "value"])
    print("job document:")
    _print_json(view.job)
    return EXIT_OK


def cmd_jobs_requeue(args: argparse.Namespace) -> int:
    if args.failed == bool(args.job_ids) or (args.type and not args.failed):
        raise CommandError("give JOB_ID... or --failed [--type TYPE]", EXIT_USAGE)
    store, app = _store(), _app()
    job_ids = requeue.failed_job_ids(store, args.type) if args.failed else args.job_ids
    results, code = [], EXIT_OK
    for job_id in job_ids:
        try:
            done = requeue.requeue(store, app, job_id)
        except requeue.Refused as exc:
            code = code or (EXIT_NOT_FOUND if isinstance(exc, requeue.UnknownJob) else EXIT_FAILED)
            results.append({"job": job_id, "requeued": False, "error": str(exc)})
            if not args.json:
                print(f"esiprov: cannot requeue {job_id}: {exc}", file=sys.stderr)
            continue
        results.append({"job": job_id, "requeued": True, "attempts": done.attempts, "sent": done.sent})
        if not args.json:
            print(f"requeued {job_id} (attempt {done.attempts}): sent {', '.join(done.sent)}, then finalize")
    if args.json:
        _print_json(results)
    elif not job_ids:
        print("no failed jobs")
    return code


def _tenant(view: dict[str, Any], rtype: str, rid: str) -> str:
    tenant = (view["heat_stack"] or {}).get("tenant_id")
    if not tenant and view["config"] is not None:
        try:
            tenant = parse_envelope(rtype, rid, view["config"]).tenant_id
        except BadConfig:
            pass
    return str(tenant or "")


def _live_stack(view: dict[str, Any], rtype: str, rid: str) -> dict[str, Any] | None:
    """The stack as Heat shows it now; None when Heat is not configured or the resource has no tenant."""
    settings = current()
    tenant = _tenant(view, rtype, rid)
    if not (settings.heat_url or settings.keystone) or not tenant:
        return None
    name = (view["heat_stack"] or {}).get("stack_id") or f"{rtype}_{rid}"
    stack = HeatClient(settings, tenant).get(name)
    if stack is None:
        return {"stack_name": name, "stack_status": "ABSENT", "status_reason": "Heat has no such stack"}
    return {"stack_name": stack.name, "stack_status": stack.status, "status_reason": stack.status_reason}


def _state_rows(view: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per source, so versions and statuses line up side by side."""
    config, state, monitoring = view["config"] or {}, view["state"] or {}, view["monitoring"] or {}
    stack, workflow, live = view["heat_stack"] or {}, view["workflow"], view["heat"]
    rows = [
        {"source": "config", "version": config.get("version"),
         "status": "marked for deletion" if config.get("marked_for_deletion") else ("present" if config else "absent")},
        {"source": "state", "version": state.get("version"),
         "status": (state.get("state") or {}).get("worker_state", "absent"), "detail": state.get("error")},
        {"source": "monitoring", "version": monitoring.get("version"),
         "status": ", ".join(f"{k}: {v}" for k, v in monitoring.items() if k != "version") or "absent"},
        {"source": "workflow", "version": (workflow or {}).get("version"),
         "status": f"{workflow.get('action')} in flight" if workflow else "none"},
        {"source": "stack (etcd)", "status": stack.get("stack_status", "absent"), "detail": stack.get("status_reason")},
        {"source": "stack (Heat)", "status": live["stack_status"] if live else "not asked",
         "detail": live["status_reason"] if live else "no Heat configured, no tenant, or --no-heat"},
    ]
    rows += [{"source": "job", "version": job_id.split(":")[4],
              "status": "failed" if job_id in view["failures"] else "in /jobs/all", "detail": job_id}
             for job_id in view["jobs"]]
    return rows


def cmd_state_show(args: argparse.Namespace) -> int:
    store, rtype, rid = _store(), args.type, args.id
    view: dict[str, Any] = {name: store.value(key(rtype, rid)) for name, key in (
        ("config", keys.config), ("state", keys.state), ("monitoring", keys.monitoring),
        ("heat_stack", keys.heat_stack), ("workflow", keys.workflow))}
    if view["config"] is None and view["state"] is None:
        raise CommandError(f"{rtype} {rid}: no config and no state", EXIT_NOT_FOUND)
    marker = f":{rtype}:{rid}:"
    view["jobs"] = [e.key[len(keys.JOBS):] for e in store.range(keys.JOBS, keys_only=True)[0] if marker in e.key]
    view["failures"] = {job_id: failure for job_id in view["jobs"]
                        if (failure := store.value(keys.failure(job_id))) is not None}
    view["heat"] = None if args.no_heat else _live_stack(view, rtype, rid)
    if args.json:
        _print_json(view)
    else:
        _table(_state_rows(view), ["source", "version", "status", "detail"], title=f"{rtype} {rid}")
    return EXIT_OK


def cmd_resync(args: argparse.Namespace) -> int:
    from esiprov.reconcile import resync

    store, app = _store(), _sender()
    with Progress(console=_console(stderr=True), transient=True, disable=not sys.stderr.isatty()) as progress:
        bar = progress.add_task("resync", total=None)
        outcomes = resync(store, app, args.resend_after,
                          lambda done, total: progress.update(bar, completed=done, total=total))
    total = sum(outcomes.values())
    if args.json:
        _print_json({"resources": total, "outcomes": dict(outcomes)})
    else:
        print(f"resynced {total} resources"
              + (": " + ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) if outcomes else ""))
    return EXIT_OK


# --- parser ---------------------------------------------------------------------------
def _command(sub: Any, name: str, run: Callable[[argparse.Namespace], int], help: str,
             json_flag: str | None = None) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help, description=help)
    parser.set_defaults(run=run)
    if json_flag:
        parser.add_argument("--json", action="store_true", help=json_flag)
    return parser


def _group(sub: Any, name: str, help: str) -> Any:
    return sub.add_parser(name, help=help, description=help).add_subparsers(
        dest=f"{name}_command", required=True, metavar="SUBCOMMAND")


def _resource_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("type", help="resource type, singular (ese_physical_port)")
    parser.add_argument("id", help="resource id")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esiprov", description=(
        "Provisioning backend for the ESI resource model: etcd configs -> Heat stacks -> SNMP "
        "monitoring -> etcd state. Configured by ESIPROV_* environment variables (see README). "
        "Exit codes: 0 ok, 1 failure, 2 bad usage, 3 not found."))
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _command(sub, "watch", cmd_watch, "watch /config and start a workflow for every resource version")

    tpl = _group(sub, "templates", "load, list and show heat templates in etcd")
    load = _command(tpl, "load", cmd_templates_load, "write the templates and schema of a directory to etcd")
    load.add_argument("directory", nargs="?", default=str(templates.SHIPPED),
                      help="directory of *.yaml templates and schema.yaml (default: the shipped ones)")
    _command(tpl, "list", cmd_templates_list, "list the templates in etcd", "print JSON instead of a table")
    show = _command(tpl, "show", cmd_templates_show, "print one template from etcd: its mappings and text",
                    "print the template document as JSON")
    show.add_argument("name", help="template name (ese_physical_port_new)")

    plan = _command(sub, "plan", cmd_plan, "print the job documents the planner would write now (JSON; writes nothing)")
    _resource_args(plan)

    jobs = _group(sub, "jobs", "inspect and requeue the jobs in /jobs/all")
    listing = _command(jobs, "list", cmd_jobs_list, (
        "list the jobs in /jobs/all: status is failed (failure record or Celery), running, done (the step "
        "finished, its workflow goes on) or pending; age is the time since the job failed or its step "
        "finished (etcd keeps no start times)"), "print JSON instead of a table")
    listing.add_argument("--failed", action="store_true", help="only jobs that failed")
    listing.add_argument("--type", metavar="TYPE", help="only jobs of this resource type (ese_physical_port)")
    show = _command(jobs, "show", cmd_jobs_show, "one job: its document, Celery state and error",
                    "print JSON instead of a table")
    show.add_argument("job_id", help="job id, as `jobs list` shows it")
    again = _command(jobs, "requeue", cmd_jobs_requeue, (
        "re-run failed jobs from their stored inputs, with the jobs after them in their chain; counts the "
        "attempt (a Heat step sends its operation again). Refused while the resource has another workflow "
        "in flight or has moved to a newer version. Exit 3 if a job is unknown, 1 if one was refused"),
        "print the outcome per job as JSON")
    again.add_argument("job_ids", nargs="*", metavar="JOB_ID", help="failed job ids, as `jobs list --failed` shows")
    again.add_argument("--failed", action="store_true", help="requeue every failed job")
    again.add_argument("--type", metavar="TYPE", help="with --failed: only jobs of this resource type")

    state = _group(sub, "state", "show a resource's state")
    show = _command(state, "show", cmd_state_show, (
        "config version, /state, /monitoring, the workflow, the stack (as recorded and as Heat shows it now) "
        "and the jobs of one resource, side by side"), "print the documents as JSON")
    _resource_args(show)
    show.add_argument("--no-heat", action="store_true", help="do not ask Heat for the live stack")

    resync = _command(sub, "resync", cmd_resync, "re-drive every resource whose config version has no final "
                      "state (a progress bar on a terminal, then a summary line)", "print the summary as JSON")
    resync.add_argument("--resend-after", type=float, default=None, metavar="SECONDS",
                        help="also send again the workflows in flight for at least SECONDS (their broker "
                             "messages may be lost: a flushed Redis, a killed worker); 0 resends all")
    return parser


def _broker_error(exc: Exception) -> str:
    settings = current()
    where = maybe_sanitize_url(settings.broker_url)
    if settings.result_backend != settings.broker_url:
        where += f" / result backend {maybe_sanitize_url(settings.result_backend)}"
    return f"broker {where} unreachable: {exc}"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet = logging.INFO if args.command == "watch" else logging.WARNING  # a watcher's log is its output
    logging.basicConfig(level=logging.DEBUG if args.verbose else quiet,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return args.run(args)
    except CommandError as exc:
        message, code = str(exc), exc.code
    except templates.TemplateError as exc:  # one problem per line, as validate lists them
        print(f"esiprov: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (StoreError, ConfigError) as exc:
        message, code = str(exc), EXIT_FAILED
    except HeatError as exc:
        message, code = f"Heat: {exc}", EXIT_FAILED
    except BROKER_ERRORS as exc:
        message, code = _broker_error(exc), EXIT_FAILED
    except KeyboardInterrupt:
        message, code = "interrupted", 130
    print(f"esiprov: {_one_line(message, 2000)}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
