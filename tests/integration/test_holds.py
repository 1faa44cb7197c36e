"""A worker's holds (esiprov.holds) on the session's real etcd: written once per workflow, again
whenever the worker cannot be sure its hold is still in place."""
from __future__ import annotations

import uuid

from esiprov import keys
from esiprov.devenv.process import wait_until
from esiprov.holds import Holder
from esiprov.store import Store

RTYPE = "ese_device"


def test_a_hold_is_written_again_for_a_message_the_worker_did_not_send_another_version_or_a_lost_lease(
        store: Store) -> None:
    holder = Holder(store, "holds-test@host", ttl=2)  # never started: nothing keeps its lease alive
    rid = str(uuid.uuid4())
    key, step = keys.hold(RTYPE, rid), f"create:heat_worker:{RTYPE}:{rid}:1:x"
    first, second = f"{RTYPE}:{rid}:1", f"{RTYPE}:{rid}:2"

    assert holder.hold(RTYPE, rid, step, first)
    written = store.get(key)
    assert written is not None and written.value["task"] == step
    assert not holder.hold(RTYPE, rid, f"finalize:{RTYPE}:{rid}:1", first, continued=True), "its own next step"
    assert store.get(key) == written
    assert holder.hold(RTYPE, rid, step, first), "a message it did not send itself: a resend, a requeue"
    assert holder.hold(RTYPE, rid, f"create:heat_worker:{RTYPE}:{rid}:2:x", second,
                       continued=True), "a new version"

    wait_until(lambda: store.get(key) is None, 30, "the unrefreshed lease to expire and take the hold")
    assert holder.hold(RTYPE, rid, f"finalize:{RTYPE}:{rid}:2", second, continued=True), "the lease was lost"
    assert store.get(key) is not None, "held again, on a new lease"
    holder.release(RTYPE, rid)
    assert holder.hold(RTYPE, rid, f"finalize:{RTYPE}:{rid}:2", second, continued=True), \
        "forgotten once released"

    holder.stop()
    assert store.get(key) is None, "a stopping worker's holds end with its lease"


def test_a_worker_no_longer_counts_on_a_hold_another_worker_has_taken_over(store: Store) -> None:
    mine, theirs = Holder(store, "holds-test-1@host"), Holder(store, "holds-test-2@host")
    rid = str(uuid.uuid4())
    step, workflow = f"create:heat_worker:{RTYPE}:{rid}:1:x", f"{RTYPE}:{rid}:1"
    try:
        assert mine.hold(RTYPE, rid, step, workflow)
        assert mine.holds_now(RTYPE, rid, workflow)
        assert theirs.hold(RTYPE, rid, step, workflow), "a resend the other worker received"
        assert mine.holds(RTYPE, rid, workflow), "the first worker's memory cannot know"
        assert not mine.holds_now(RTYPE, rid, workflow), "etcd does: the hold is on the other worker's lease"
        assert theirs.holds_now(RTYPE, rid, workflow)
    finally:
        mine.stop()
        theirs.stop()
