"""The ``esiprov`` command: watch, status, templates, plan, jobs, state, resync, completion.

Output is a table for people and JSON (``--json``) for scripts. Errors a user can
meet (etcd, the broker or Heat unreachable, a bad argument, a bad template, a
job that cannot be requeued) end in one line on stderr and a meaningful exit
code, never a traceback: 0 ok, 1 failure, 2 bad usage, 3 not found. What the
commands read lives beside them: esiprov.jobstatus (jobs), esiprov.resources
(state), esiprov.health (status); how they print, in esiprov.output.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from celery import Celery
from kombu.utils.url import maybe_sanitize_url
from rich.progress import Progress

from esiprov import broker, completion, health, jobstatus, keys, logs, planner, requeue, resources, templates
from esiprov.broker import BROKER_ERRORS
from esiprov.errors import EsiprovError
from esiprov.follow import follow
from esiprov.heat import HeatError
from esiprov.output import age, console, one_line, print_json, stream_json, stream_table, table
from esiprov.settings import current
from esiprov.store import Store

if TYPE_CHECKING:
    from esiprov.metrics import MetricsServer
    from esiprov.watcher import Watcher

log = logging.getLogger("esiprov")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3
#: seconds ``jobs requeue --wait`` waits for /state by default
WAIT_TIMEOUT = 600.0


class CommandError(Exception):
    """A user-facing failure: printed as one line, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


# --- connections ----------------------------------------------------------------------
def _store() -> Store:
    store = Store.connect(current())
    store.ping()
    return store


def _app() -> Celery:
    from esiprov.app import app  # imported late: only commands that talk to Celery pay for it

    return app


def _sender() -> Celery:
    """The app for a command that sends workflows but never reads a result (watch, resync), once the
    broker has answered: a wrong URL or password stops the command in one line, not in a log of
    failed sends.

    It has no result backend: with Redis's, every send outside a worker also subscribes to the
    task's result channel (a round trip per task), and once that subscription failed to reconnect
    (the broker restarted) every later send fails until the process restarts.
    """
    app = _app()
    app.conf["result_backend"] = None  # as the attribute would (celery-types declares that one read-only)
    broker.check(app)
    return app


# --- following changes ----------------------------------------------------------------
def _followed(store: Store, args: argparse.Namespace, prefixes: Sequence[str], show: Callable[[], None]) -> int:
    """``show`` once, or with ``--watch`` again on every change under ``prefixes`` until Ctrl-C (exit 0)."""
    if not getattr(args, "watch", False):
        show()
        return EXIT_OK
    out = console()

    def again() -> None:
        if out.is_terminal:
            out.clear()
            print(f"{time.strftime('%H:%M:%S')}  following changes; Ctrl-C to stop")
        show()
        sys.stdout.flush()
    try:
        follow(store, prefixes, again)
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _emit_json(args: argparse.Namespace, value: Any) -> None:
    """Indented once; one line per look when following (--watch), so a script reads one document a line."""
    print(json.dumps(value), flush=True) if getattr(args, "watch", False) else print_json(value)


def _type(store: Store, name: str | None) -> str | None:
    return resources.resolve_type(store, name) if name else None


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


def cmd_status(args: argparse.Namespace) -> int:
    app = _app()  # etcd is not pinged first: an etcd that does not answer is part of the report
    report = health.gather(current(), app, health.queue_names(app.conf))
    if args.json:
        print_json(report.document())
    else:
        print("\n".join(health.describe(report)))
    if report.problems:
        raise CommandError("down: " + "; ".join(report.problems))
    return EXIT_OK


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
        if (name := keys.template_name_of(entry.key)) is None:
            continue  # not a template's own key
        rows.append({"name": name, "handler": templates.read(store, name).handler,
                     "version": entry.value.get("version")})
    print_json(rows) if args.json else table(rows, ["name", "handler", "version"])
    return EXIT_OK


def cmd_templates_show(args: argparse.Namespace) -> int:
    store = _store()
    if store.get(keys.template(args.name)) is None:
        raise CommandError(f"no template {args.name} in etcd ({keys.template(args.name)})", EXIT_NOT_FOUND)
    template = templates.read(store, args.name)
    if args.json:
        print_json(template.body())
        return EXIT_OK
    table([{"param": k, "mapping": json.dumps(v) if not isinstance(v, str) else v}
           for k, v in template.parameter_mappings.items()],
          ["param", "mapping"], title=f"{template.id} ({template.handler})")
    print(template.template_file, end="" if template.template_file.endswith("\n") else "\n")
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    """JSON whether or not ``--json`` is given: the job documents are the output."""
    store = _store()
    rtype = resources.resolve_type(store, args.type)
    try:
        plan = planner.plan(store, rtype, args.id)
    except planner.PlanError as exc:
        raise CommandError(f"cannot plan {rtype} {args.id}: {exc}")
    if plan is None:
        raise CommandError(f"no config at {keys.config(rtype, args.id)}", EXIT_NOT_FOUND)
    print_json([job.document() for job in plan.jobs])
    return EXIT_OK


JOB_COLUMNS = ["id", "resource", "action", "handler", "attempts", "status", "waiting", "age", "error"]
#: most important first: on a narrow terminal the last ones go first, and the id never goes
JOB_IMPORTANCE = ["id", "status", "waiting", "age", "error", "attempts", "action", "handler", "resource"]
#: columns that may wrap, and the narrowest they wrap to
JOB_WRAPPING = {"error": 20, "waiting": 20}


def _waiting(row: dict[str, Any]) -> str:
    """What a waiting job waits for, and for how long."""
    if not row["waiting_for"]:
        return ""
    since = f" for {age(row['waiting_seconds'])}" if row["waiting_seconds"] is not None else ""
    return ", ".join(row["waiting_for"]) + since


def _jobs_table(rows: list[dict[str, Any]]) -> None:
    columns = [c for c in JOB_COLUMNS if c != "waiting" or any(row["waiting_for"] for row in rows)]
    table([{**row, "age": age(row["age_seconds"]), "error": one_line(row["error"]), "waiting": _waiting(row)}
           for row in rows], columns, importance=JOB_IMPORTANCE, wrapping=JOB_WRAPPING)


def cmd_jobs_list(args: argparse.Namespace) -> int:
    store, app = _store(), _app()
    rtype = _type(store, args.type)

    def show() -> None:
        rows = [view.row() for view in jobstatus.list_jobs(store, app, rtype, args.failed)]
        if args.json:
            _emit_json(args, rows)
        elif not rows:
            print("no failed jobs" if args.failed else "no jobs")
        else:
            _jobs_table(rows)
    return _followed(store, args, [keys.JOBS, keys.FAILURES, keys.HOLDS, keys.WORKFLOWS], show)


def cmd_jobs_show(args: argparse.Namespace) -> int:
    store, app = _store(), _app()
    view = jobstatus.show_job(store, app, args.job_id)
    if view is None:
        celery = jobstatus.celery_meta(app, args.job_id).get("status")
        raise CommandError(f"no job {args.job_id} in {keys.JOBS} (finished jobs are removed; "
                           f"Celery's last state for it: {celery})", EXIT_NOT_FOUND)
    row = view.row()
    if args.json:
        print_json({"id": view.id, "handler": view.handler, "attempts": view.attempts, "status": view.status,
                    "celery_state": view.celery.get("status"), "error": view.error, "failure": view.failure,
                    "worker": row["worker"], "waiting_for": row["waiting_for"],
                    "waiting_seconds": row["waiting_seconds"], "job": view.job.document()})
        return EXIT_OK
    fields = ("id", "resource", "version", "action", "handler", "attempts", "status", "worker", "celery_state",
              "error")
    table([{"field": k, "value": row[k]} for k in fields]
          + [{"field": "waiting for", "value": _waiting(row)}] * bool(row["waiting_for"])
          + [{"field": "age", "value": age(row["age_seconds"])}], ["field", "value"])
    print("job document:")
    print_json(view.job.document())
    return EXIT_OK


def cmd_jobs_requeue(args: argparse.Namespace) -> int:
    if args.failed == bool(args.job_ids) or (args.type and not args.failed):
        raise CommandError("give JOB_ID... or --failed [--type TYPE]", EXIT_USAGE)
    store, app = _store(), _app()
    job_ids = requeue.failed_job_ids(store, _type(store, args.type)) if args.failed else args.job_ids
    results, code = [], EXIT_OK
    for job_id in job_ids:
        before = store.revision()
        try:
            done = requeue.requeue(store, app, job_id)
        except requeue.Refused as exc:
            code = code or (EXIT_NOT_FOUND if isinstance(exc, requeue.UnknownJob) else EXIT_FAILED)
            results.append({"job": job_id, "requeued": False, "error": str(exc)})
            if not args.json:
                print(f"esiprov: cannot requeue {job_id}: {exc}", file=sys.stderr)
            continue
        results.append({"job": job_id, "requeued": True, "attempts": done.attempts, "sent": done.sent,
                        "after_revision": before})
        if not args.json:
            print(f"requeued {job_id} (attempt {done.attempts}): sent {', '.join(done.sent)}, then finalize",
                  flush=True)
    if args.wait:
        code = max(code, _wait_all(store, args, results))
    for result in results:
        result.pop("after_revision", None)
    if args.json:
        print_json(results)
    elif not job_ids:
        print("no failed jobs")
    return code


def _wait_all(store: Store, args: argparse.Namespace, results: list[dict[str, Any]]) -> int:
    """``--wait``: every requeued job's /state, within one ``--timeout`` for all; 1 unless all completed."""
    deadline, code = time.monotonic() + args.timeout, EXIT_OK
    for result in (r for r in results if r["requeued"]):
        outcome = requeue.wait_settled(store, result["job"], result["after_revision"], deadline)
        result.update(outcome.document())
        line = outcome.describe(args.timeout)
        if not outcome.completed:
            code = EXIT_FAILED
        if not args.json:
            print(line) if outcome.completed else print(f"esiprov: {line}", file=sys.stderr)
    return code


def cmd_state_list(args: argparse.Namespace) -> int:
    store = _store()
    rows = resources.resource_rows(store, _type(store, args.type), args.failed)
    if args.json:
        stream_json(row.document() for row in rows)
    elif not stream_table(({**row.cells(), "error": one_line(row.error)} for row in rows), resources.COLUMNS):
        print("no failed resources" if args.failed else "no resources")
    return EXIT_OK


def cmd_state_show(args: argparse.Namespace) -> int:
    store = _store()
    rtype, rid = resources.resolve_type(store, args.type), args.id

    def show() -> None:
        view = resources.resource_view(store, rtype, rid, ask_heat=not args.no_heat)
        if view is None:
            raise CommandError(f"{rtype} {rid}: no config and no state", EXIT_NOT_FOUND)
        if args.json:
            _emit_json(args, view)
        else:
            table(resources.view_rows(view), ["source", "version", "status", "detail"], title=f"{rtype} {rid}")
    return _followed(store, args, resources.view_keys(rtype, rid), show)


def cmd_resync(args: argparse.Namespace) -> int:
    """Exit 1 when a resource could not be reconciled (its error is in the log)."""
    from esiprov.reconcile import ERROR, resync

    store, app = _store(), _sender()
    with Progress(console=console(stderr=True), transient=True, disable=not sys.stderr.isatty()) as progress:
        bar = progress.add_task("resync", total=None)
        outcomes = resync(store, app, args.resend_after,
                          lambda done, total: progress.update(bar, completed=done, total=total))
    total = sum(outcomes.values())
    if args.json:
        print_json({"resources": total, "outcomes": dict(outcomes)})
    else:
        print(f"resynced {total} resources"
              + (": " + ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) if outcomes else ""))
    return EXIT_FAILED if outcomes[ERROR] else EXIT_OK


def cmd_completion(args: argparse.Namespace) -> int:
    print(completion.script(build_parser(), args.shell), end="")
    return EXIT_OK


# --- parser ---------------------------------------------------------------------------
def version() -> str:
    try:
        return importlib.metadata.version("esiprov")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _global_options(parser: argparse.ArgumentParser, below: bool) -> None:
    """-v and --version, on the top parser and again on every subcommand (``esiprov jobs list -v``).

    Below the top they default to SUPPRESS: a subcommand's default would otherwise overwrite a
    ``-v`` given before it.
    """
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS if below else False,
                        help="log debug details")
    parser.add_argument("--version", action="version", version=f"esiprov {version()}",
                        help="print esiprov's version and exit")


class _Formatter(argparse.HelpFormatter):
    """Descriptions wrapped to the terminal, as argparse does; the examples kept one per line."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("example:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _examples(*lines: str) -> str:
    return "example:\n" + "\n".join(f"  {line}" for line in lines)


def _command(sub: Any, name: str, run: Callable[[argparse.Namespace], int], help: str,
             json_flag: str | None = None, example: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help, description=help, epilog=_examples(*example) if example else None,
                            formatter_class=_Formatter)
    _global_options(parser, below=True)
    parser.set_defaults(run=run)
    if json_flag:
        parser.add_argument("--json", action="store_true", help=json_flag)
    return parser


def _group(sub: Any, name: str, help: str, example: Sequence[str]) -> Any:
    parser = sub.add_parser(name, help=help, description=help, epilog=_examples(*example),
                            formatter_class=_Formatter)
    _global_options(parser, below=True)
    return parser.add_subparsers(dest=f"{name}_command", required=True, metavar="SUBCOMMAND")


TYPE_HELP = "resource type, singular or as in the etcd keys (ese_physical_port or ese_physical_ports)"


def _resource_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("type", help=TYPE_HELP)
    parser.add_argument("id", help="resource id")


def _watch_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--watch", action="store_true",
                        help=f"show it again whenever {what} changes in etcd, until Ctrl-C "
                             "(with --json: one JSON document per line)")


def _templates_parsers(sub: Any) -> None:
    tpl = _group(sub, "templates", "load, list and show heat templates in etcd",
                 ["esiprov templates load", "esiprov templates show ese_physical_port_new"])
    load = _command(tpl, "load", cmd_templates_load, "write the templates and schema of a directory to etcd",
                    example=["esiprov templates load heat_templates/"])
    load.add_argument("directory", nargs="?", default=str(templates.SHIPPED),
                      help="directory of *.yaml templates and schema.yaml (default: the shipped ones)")
    _command(tpl, "list", cmd_templates_list, "list the templates in etcd", "print JSON instead of a table",
             ["esiprov templates list --json"])
    show = _command(tpl, "show", cmd_templates_show, "print one template from etcd: its mappings and text",
                    "print the template document as JSON", ["esiprov templates show ese_physical_port_new"])
    show.add_argument("name", help="template name (ese_physical_port_new)")


def _jobs_parsers(sub: Any) -> None:
    job = "create:heat_worker:ese_physical_port:c0ffee00-1d2e-4f5a-8b9c-0123456789ab:1:xfqzo"
    jobs = _group(sub, "jobs", "inspect and requeue the jobs in /jobs/all",
                  ["esiprov jobs list --failed", f"esiprov jobs requeue --wait {job}"])
    listing = _command(jobs, "list", cmd_jobs_list, (
        "list the jobs in /jobs/all: status is failed (failure record or Celery), blocked (an earlier step "
        "failed), waiting (for a referenced resource's job, named in WAITING), running, done (the step "
        "finished, its workflow goes on) or pending; age is the time since the job failed, a worker received "
        "it or its step finished"), "print JSON instead of a table",
        ["esiprov jobs list --failed --type ese_physical_port", "esiprov jobs list --watch"])
    listing.add_argument("--failed", action="store_true", help="only jobs that failed")
    listing.add_argument("--type", metavar="TYPE", help=f"only jobs of this {TYPE_HELP}")
    _watch_flag(listing, "a job")
    show = _command(jobs, "show", cmd_jobs_show, "one job: its document, Celery state, error and what it waits for",
                    "print JSON instead of a table", [f"esiprov jobs show {job}"])
    show.add_argument("job_id", help="job id, as `jobs list` shows it")
    again = _command(jobs, "requeue", cmd_jobs_requeue, (
        "re-run failed jobs from their stored inputs, with the jobs after them in their chain; counts the "
        "attempt (a Heat step sends its operation again). Refused while the resource has another workflow "
        "in flight or has moved to a newer version. Exit 3 if a job is unknown, 1 if one was refused (or, "
        "with --wait, did not complete)"), "print the outcome per job as JSON",
        [f"esiprov jobs requeue --wait --timeout 300 {job}", "esiprov jobs requeue --failed --type ese_device"])
    again.add_argument("job_ids", nargs="*", metavar="JOB_ID", help="failed job ids, as `jobs list --failed` shows")
    again.add_argument("--failed", action="store_true", help="requeue every failed job")
    again.add_argument("--type", metavar="TYPE", help=f"with --failed: only jobs of this {TYPE_HELP}")
    again.add_argument("--wait", action="store_true",
                       help="return once the /state of each requeued resource is final for its version "
                            "(*_COMPLETED, READ_COMPLETE or *_FAILED); exit 1 unless all completed")
    again.add_argument("--timeout", type=float, default=WAIT_TIMEOUT, metavar="SECONDS",
                       help=f"with --wait: give up after SECONDS for all the jobs (default {WAIT_TIMEOUT:g})")


def _state_parsers(sub: Any) -> None:
    rid = "c0ffee00-1d2e-4f5a-8b9c-0123456789ab"
    state = _group(sub, "state", "list resources and show one resource's state",
                   ["esiprov state list --failed", f"esiprov state show ese_physical_port {rid}"])
    listing = _command(state, "list", cmd_state_list, (
        "every resource with a config or a /state, in key order: its config version, /state version and "
        "worker_state, /monitoring statuses and error (read in pages: any fleet size)"),
        "print a JSON array, one resource per line", ["esiprov state list --failed",
                                                      "esiprov state list --type ese_devices --json"])
    listing.add_argument("--failed", action="store_true",
                         help="only resources whose /state is *_FAILED (failures at planning included)")
    listing.add_argument("--type", metavar="TYPE", help=f"only resources of this {TYPE_HELP}")
    show = _command(state, "show", cmd_state_show, (
        "config version, /state, /monitoring, the workflow, the stack (as recorded and as Heat shows it now) "
        "and the jobs of one resource, side by side"), "print the documents as JSON",
        [f"esiprov state show ese_physical_port {rid}", f"esiprov state show --watch --no-heat ese_devices {rid}"])
    _resource_args(show)
    show.add_argument("--no-heat", action="store_true", help="do not ask Heat for the live stack")
    _watch_flag(show, "one of its records")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esiprov", description=(
        "Provisioning backend for the ESI resource model: etcd configs -> Heat stacks -> SNMP "
        "monitoring -> etcd state. Configured by ESIPROV_* environment variables (see README). "
        "Exit codes: 0 ok, 1 failure, 2 bad usage, 3 not found."),
        epilog=_examples("esiprov status", "esiprov jobs list --failed", 'eval "$(esiprov completion bash)"'),
        formatter_class=_Formatter)
    _global_options(parser, below=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _command(sub, "watch", cmd_watch, "watch /config and start a workflow for every resource version",
             example=["esiprov watch"])
    _command(sub, "status", cmd_status, (
        "one screen: etcd endpoints, the leading watcher, the broker, workers per queue and queue depths, the "
        "last poll cycle, failed jobs, workflows in flight and workers holding work. Exit 1 when something "
        "is down (the reasons are listed)"), "print the report as JSON", ["esiprov status", "esiprov status --json"])
    _templates_parsers(sub)
    plan = _command(sub, "plan", cmd_plan, "print the job documents the planner would write now (JSON; writes nothing)",
                    "print JSON (the default: accepted as every command accepts it)",
                    ["esiprov plan ese_physical_port c0ffee00-1d2e-4f5a-8b9c-0123456789ab"])
    _resource_args(plan)
    _jobs_parsers(sub)
    _state_parsers(sub)
    resync = _command(sub, "resync", cmd_resync, "re-drive every resource whose config version has no final "
                      "state (a progress bar on a terminal, then a summary line)", "print the summary as JSON",
                      ["esiprov resync --resend-after 600"])
    resync.add_argument("--resend-after", type=float, default=None, metavar="SECONDS",
                        help="also send again the workflows in flight for at least SECONDS (their broker "
                             "messages may be lost: a flushed Redis, a killed worker); 0 resends all")
    shell = _command(sub, "completion", cmd_completion, "print a shell completion script",
                     example=['eval "$(esiprov completion bash)"   # in ~/.bashrc',
                              'eval "$(esiprov completion zsh)"    # in ~/.zshrc'])
    shell.add_argument("shell", choices=completion.SHELLS, help="the shell: bash or zsh")
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
        if current().log_format == logs.JSON:
            logs.use_json()
        return args.run(args)
    except CommandError as exc:
        message, code = str(exc), exc.code
    except templates.TemplateError as exc:  # one problem per line, as validate lists them
        print(f"esiprov: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except HeatError as exc:
        message, code = f"Heat: {exc}", EXIT_FAILED
    except EsiprovError as exc:  # etcd, a setting, a config or mapping: the message says which
        message, code = str(exc), EXIT_FAILED
    except BROKER_ERRORS as exc:
        message, code = _broker_error(exc), EXIT_FAILED
    except KeyboardInterrupt:
        message, code = "interrupted", 130
    print(f"esiprov: {one_line(message, 2000)}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
