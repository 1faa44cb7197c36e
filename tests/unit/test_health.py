"""What `esiprov status` calls down, and how it says it."""
from __future__ import annotations

from esiprov import health, keys

UP = {"endpoint": "127.0.0.1:2379", "ok": True, "error": None}


def _report(**parts) -> health.Report:
    base = {"etcd": [UP], "broker": {"url": "redis://127.0.0.1:6379/0", "error": None},
            "queues": {"heat_worker": {"waiting": 0, "workers": ["w@h"]}}, "workers": ["w@h"],
            "leader": {"holder": "h:1", "heartbeat_holder": "h:1", "heartbeat_age_seconds": 1.0},
            "fleet": {"failed_jobs": 2, "workflows_in_flight": 1, "oldest_workflow_age_seconds": 5.0, "unsent": 0,
                      "holds": 1, "holding_workers": 1}}
    return health.Report(**{**base, **parts})


def test_everything_up_is_no_problem():
    assert health.problems(_report()) == []


def test_an_etcd_endpoint_down_is_a_problem_naming_it():
    down = {"endpoint": "127.0.0.1:2380", "ok": False, "error": "etcd at 127.0.0.1:2380: UNAVAILABLE"}
    assert health.problems(_report(etcd=[UP, down])) == [
        "etcd 127.0.0.1:2380 does not answer: etcd at 127.0.0.1:2380: UNAVAILABLE"]


def test_no_leader_is_a_problem_only_when_etcd_could_say_so():
    assert health.problems(_report(leader=None)) == [
        f"no watcher leads (no {keys.WATCHER_LEADER}): start `esiprov watch`"]
    down = {**UP, "ok": False, "error": "x"}
    assert health.problems(_report(etcd=[down], leader=None)) == ["etcd 127.0.0.1:2379 does not answer: x"]


def test_a_stale_heartbeat_is_a_problem():
    stale = {"holder": "h:1", "heartbeat_holder": "h:1", "heartbeat_age_seconds": health.HEARTBEAT_STALE + 1}
    assert health.problems(_report(leader=stale))[0].startswith("the leading watcher's last heartbeat is")


def test_a_broker_down_is_one_problem_and_hides_the_worker_checks():
    found = health.problems(_report(broker={"url": "redis://:**@h/0", "error": "refused"}, workers=None))
    assert found == ["broker redis://:**@h/0 does not answer: refused"]


def test_no_worker_answering_is_a_problem():
    assert health.problems(_report(workers=[])) == [f"no Celery worker answered within {health.INSPECT_TIMEOUT:g} s"]


def test_a_queue_nobody_consumes_is_a_problem():
    queues = {"heat_worker": {"waiting": 0, "workers": ["w@h"]}, "poller": {"waiting": 3, "workers": []}}
    assert health.problems(_report(queues=queues)) == ["no worker consumes queue poller"]


def test_the_screen_names_every_part_and_lists_the_problems_last():
    report = _report(leader=None)
    report.problems = health.problems(report)
    lines = health.describe(report)
    assert lines[0] == "etcd        127.0.0.1:2379 ok"
    assert "watcher     no leader" in lines
    assert any(line.split() == ["heat_worker", "0", "w@h"] for line in lines)
    assert "workflows   1 in flight, the oldest sent 5 s ago; 0 not taken by the broker yet" in lines
    assert lines[-2:] == ["problems:", f"  no watcher leads (no {keys.WATCHER_LEADER}): start `esiprov watch`"]
