"""A py-spy profile of a running worker, summed up by where its time goes. Two views:

- ``Profile(pid, path)`` runs ``py-spy record --gil --format raw`` on the process while a ``with``
  block runs. ``--gil`` samples only the thread that holds the GIL, so the samples are the
  interpreter's busy time: a thread-pool worker is one process, and what it can do per second is
  bounded by that one GIL. Samples are put in buckets (``classify``) by the frames of their stack.
- ``Profile(pid, path, consumer=True)`` samples every thread, idle or not (``--threads --idle
  --nonblocking``), and keeps the consumer thread (Celery's event loop, ``asynloop``): the one
  thread that receives, hands over and acks every message, so its wall time is a serial resource.
  A blocking call there (a Redis round trip, an etcd write) costs its whole wait, and the GIL it
  must win back afterwards from the busy pool threads.
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

#: samples per second
RATE = 100

#: (kind, fragments of a frame's file that put a frame in it): esiprov's work by what it waits on
KINDS = [
    ("JSON", ("/json/",)),
    ("etcd", ("esiprov/store.py", "/pyetcd/", "/grpc/", "/google/protobuf/")),
    ("Heat HTTP", ("esiprov/heat.py", "/heatclient/", "/keystoneauth1/", "/requests/", "/urllib3/",
                   "/http/client.py")),
    ("SNMP", ("esiprov/snmp.py", "esiprov/ifindex.py", "/easysnmp/")),
    ("templates (Jinja, YAML)", ("/jinja2/", "/yaml/", "esiprov/templates.py", "esiprov/mappings.py")),
    ("Celery retry (publish the countdown)", ("celery/app/task.py", "/kombu/", "/redis/")),
]
#: the esiprov step a stack runs in, by its frames (the first that matches decides)
STEPS = [("heat_worker", "tasks/heat_worker.py"), ("monitoring_worker", "tasks/monitoring_worker.py"),
         ("finalize", "tasks/finalize.py"), ("step wrapper", "tasks/job.py")]
#: (part, function names): Celery's part of running a task, the first rule with a frame of those names
TASK_PARTS = [
    ("store the result (Redis SETEX, PUBLISH)", ("mark_as_done", "store_result", "_store_result")),
    ("publish the next step of the chain", ("_dispatch_callbacks_and_chain", "apply_async", "send_task")),
    ("tracer, 'succeeded' log", ()),
]
#: the consumer thread: receiving, handing to the pool, acking
CONSUMER_PARTS = [
    ("ack (kombu: MULTI ZREM HDEL EXEC)", ("Message.ack", "basic_ack")),
    ("receive: kombu's unacked bookkeeping (MULTI HSET ZADD EXEC)", ("QoS.append",)),
    ("receive: Celery request and 'received' log, hand to the pool", ("task_message_handler",)),
    ("receive: BRPOP and decode", ("_brpop_read", "_brpop_start", "_register_BRPOP")),
    ("event loop, timers, heartbeat", ()),
]
#: the consumer thread's wall time (function names, the first rule that matches decides)
CONSUMER_WALL = [
    ("esiprov holds: an etcd write per received message", ("Holder.hold",)),
    ("ack (a Redis round trip)", ("Message.ack",)),
    ("receive: kombu's unacked bookkeeping (a Redis round trip)", ("QoS.append",)),
    ("receive: Celery request, 'received' log, hand to the pool", ("task_message_handler",)),
    ("receive: BRPOP start and read", ("_brpop_start", "_brpop_read", "_register_BRPOP")),
    ("timers, heartbeat", ("fire_timers",)),
    ("idle in epoll (no message ready, or the prefetch limit reached)", ("_epoll.poll",)),
    ("event loop", ()),
]


def frame_file(frame: str) -> str:
    """The file of a raw py-spy frame ``function (path/file.py:line)``."""
    inside = frame.rpartition(" (")[2]
    return inside.rpartition(":")[0] if ":" in inside else inside


def frame_function(frame: str) -> str:
    return frame.rpartition(" (")[0] or frame


def _part(functions: list[str], parts: list[tuple[str, tuple[str, ...]]]) -> str:
    for part, names in parts:
        if not names or any(name in function for function in functions for name in names):
            return part
    return parts[-1][0]


def classify(frames: list[str]) -> tuple[str, str]:
    """(area, detail) of one sample; ``frames`` outermost first."""
    files = [frame_file(frame) for frame in frames]
    functions = [frame_function(frame) for frame in frames]
    if any("esiprov/holds.py" in f for f in files):
        return "esiprov", "holds (an etcd write per received message, in the consumer thread)"
    step = next((name for name, fragment in STEPS if any(fragment in f for f in files)), None)
    if step is not None:
        for path in reversed(files):
            for kind, fragments in KINDS:
                if any(fragment in path for fragment in fragments):
                    return "esiprov", f"{step}: {kind}"
        return "esiprov", f"{step}: own code"
    if any("celery/app/trace.py" in f for f in files):
        return "Celery task", _part(functions, TASK_PARTS)
    if any("celery/worker/" in f or "kombu/" in f for f in files):
        return "Celery consumer", _part(functions, CONSUMER_PARTS)
    return "other", (functions[-1] if functions else "?")[:80]


class Profile:
    """``with Profile(pid, out):`` samples the process while the block runs; then ``summary()``."""

    def __init__(self, pid: int, out: Path, consumer: bool = False) -> None:
        self.pid = pid
        self.out = out
        self.consumer = consumer
        self.seconds = 0.0
        self._proc: subprocess.Popen | None = None
        self.error = ""

    def __enter__(self) -> Profile:
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(spy).exists():
            self.error = "py-spy not installed (make bench installs it: pip install py-spy)"
            return self
        self._log = open(self.out.with_suffix(".log"), "wb")
        view = ["--threads", "--idle", "--nonblocking"] if self.consumer else ["--gil"]
        self._proc = subprocess.Popen([spy, "record", "--pid", str(self.pid), *view, "--format", "raw",
                                       "--rate", str(RATE), "--output", str(self.out)],
                                      stdout=self._log, stderr=subprocess.STDOUT)
        time.sleep(1.0)  # py-spy attaches
        if self._proc.poll() is not None:
            self.error = f"py-spy exited with {self._proc.returncode}: see {self.out.with_suffix('.log')}"
        self._started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is None:
            return
        self.seconds = time.monotonic() - self._started
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)  # py-spy writes its output and exits
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()
        if not self.out.exists():
            self.error = self.error or f"py-spy wrote no profile: see {self.out.with_suffix('.log')}"

    def samples(self) -> Counter[tuple[str, str]]:
        """Samples per (area, detail); in the consumer view only the consumer thread's, per part."""
        found: Counter[tuple[str, str]] = Counter()
        if self.error or not self.out.exists():
            return found
        for line in self.out.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames = [frame for frame in stack.split(";") if not frame.startswith(("process ", "thread "))]
            if not self.consumer:
                found[classify(frames)] += int(count)
                continue
            functions = [frame_function(frame) for frame in frames]
            if "asynloop" in functions:
                found["consumer", _part(functions, CONSUMER_WALL)] += int(count)
        return found

    def consumer_summary(self) -> str:
        """One line: the consumer thread's wall time by part."""
        if self.error:
            return f"profile not taken: {self.error}"
        samples = self.samples()
        total = sum(samples.values())
        if not total:
            return "profile: no samples of the consumer thread"
        return "; ".join(f"{detail} {count / total:.0%}" for (_, detail), count in samples.most_common())

    def summary(self, count: int, unit: str) -> list[str]:
        """Lines: the GIL's busy share, then each area and its details, as shares of the busy samples and
        as GIL milliseconds per ``unit`` (``count`` of them were handled while sampling)."""
        if self.error:
            return [f"profile not taken: {self.error}"]
        samples = self.samples()
        total = sum(samples.values())
        if not total:
            return ["profile: no samples"]
        per_unit = 1000 / RATE / count
        lines = [f"GIL held {total / (self.seconds * RATE):.0%} of {self.seconds:.1f} s = {total * per_unit:.1f} ms "
                 f"per {unit} ({total} samples at {RATE}/s); each area: share of the busy samples, ms per {unit}"]
        areas: Counter[str] = Counter()
        for (area, _), found in samples.items():
            areas[area] += found
        for area, found in areas.most_common():
            if found / total < 0.005:
                continue
            details = sorted(((c, d) for (a, d), c in samples.items() if a == area), reverse=True)
            shown = "; ".join(f"{d} {c / total:.1%}" for c, d in details if c / total >= 0.005) or "scattered"
            lines.append(f"{area} {found / total:.0%} ({found * per_unit:.1f} ms): {shown}")
        return lines
