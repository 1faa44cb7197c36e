"""The per-process interface index: keys that never mix, a bounded LRU, consistent under threads."""
from __future__ import annotations

import random
import threading

from esiprov.ifindex import DeviceKey, InterfaceIndex, Interfaces, restarted

KEY = DeviceKey("192.0.2.1", 161, "secret-community")


def test_devices_ports_and_communities_each_have_their_own_map() -> None:
    index = InterfaceIndex()
    index.remember(KEY, {"xe-0/0/1": "501"})
    for other in (DeviceKey("192.0.2.2", 161, KEY.community), DeviceKey(KEY.ip, 1161, KEY.community),
                  DeviceKey(KEY.ip, 161, "another-community")):
        assert index.get(other) is None
    assert index.get(DeviceKey(KEY.ip, KEY.port, KEY.community)) == Interfaces({"xe-0/0/1": "501"})


def test_a_device_key_never_shows_its_community() -> None:
    assert "secret-community" not in f"{KEY!r} {KEY!s}"


def test_the_least_recently_used_device_is_forgotten_beyond_capacity() -> None:
    index = InterfaceIndex(capacity=2)
    a, b, c = (DeviceKey(f"192.0.2.{n}", 161, "c") for n in (1, 2, 3))
    index.remember(a, {"p": "1"})
    index.remember(b, {"p": "1"})
    index.get(a)
    index.remember(c, {"p": "1"})
    assert (index.get(a) is not None, index.get(b), index.get(c) is not None) == (True, None, True)
    assert len(index) == 2


def test_a_walk_keeps_the_last_uptime_and_a_get_keeps_the_last_map() -> None:
    index = InterfaceIndex()
    index.note_uptime(KEY, 500)  # not remembered yet: nothing to attach it to
    index.remember(KEY, {"p": "1"})
    assert index.get(KEY) == Interfaces({"p": "1"}, None)
    index.note_uptime(KEY, 700)
    index.remember(KEY, {"p": "2"})
    assert index.get(KEY) == Interfaces({"p": "2"}, 700)
    index.note_uptime(KEY, None)  # an agent without sysUpTime leaves the last reading
    assert index.get(KEY) == Interfaces({"p": "2"}, 700)


def test_a_restart_is_sysUpTime_going_back_by_more_than_the_slack() -> None:
    assert not restarted(None, 100, slack=400)
    assert not restarted(10_000, None, slack=400)
    assert not restarted(10_000, 12_000, slack=400)
    assert not restarted(10_000, 9_700, slack=400)  # an older answer arriving late
    assert restarted(10_000, 50, slack=400)


def test_threads_always_read_whole_maps_and_the_index_stays_bounded() -> None:
    index = InterfaceIndex(capacity=8)
    keys = [DeviceKey(f"192.0.2.{n}", 161, "c") for n in range(16)]
    torn: list[Interfaces] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        for step in range(2000):
            key = rng.choice(keys)
            if step % 3 == 0:
                index.remember(key, {f"p{port}": str(step) for port in range(48)})
            elif step % 3 == 1:
                index.note_uptime(key, step)
            elif (found := index.get(key)) is not None and len(set(found.indexes.values())) != 1:
                torn.append(found)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert torn == []
    assert len(index) == 8
