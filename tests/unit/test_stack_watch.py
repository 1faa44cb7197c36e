"""When the stack watch wakes a waiting heat step (esiprov.stack_watch.Wait.over): pure logic."""
from __future__ import annotations

from esiprov.heat import Stack
from esiprov.settings import Settings
from esiprov.stack_watch import Wait

SETTINGS = Settings(wait_timeout=900.0)
NAME = "ese_device_1"
NOW = 1_000.0


def stack(status: str, updated: str = "") -> dict[str, Stack]:
    return {NAME: Stack(name=NAME, id="id-1", status=status, status_reason="", outputs=[], updated_time=updated)}


def wait(seen: list[str], since: float = NOW - 5, fallback: float = NOW + 5) -> Wait:
    return Wait(due=NOW, order=0, tenant="t", name=NAME, seen=seen, since=since, fallback=fallback,
                resend=lambda: None)


def test_a_stack_still_building_keeps_its_step_waiting() -> None:
    assert not wait(["CREATE_IN_PROGRESS", ""]).over(stack("CREATE_IN_PROGRESS"), NOW, SETTINGS)


def test_a_stack_that_finished_or_failed_wakes_its_step() -> None:
    assert wait(["CREATE_IN_PROGRESS", ""]).over(stack("CREATE_COMPLETE"), NOW, SETTINGS)
    assert wait(["CREATE_IN_PROGRESS", ""]).over(stack("CREATE_FAILED"), NOW, SETTINGS)


def test_a_stack_that_is_gone_wakes_its_step() -> None:
    assert wait(["DELETE_IN_PROGRESS", ""]).over({}, NOW, SETTINGS)


def test_an_update_heat_has_not_taken_up_yet_keeps_waiting_until_the_stack_shows_it() -> None:
    before = ["CREATE_COMPLETE", ""]
    assert not wait(before).over(stack("CREATE_COMPLETE"), NOW, SETTINGS), "still the previous outcome"
    assert not wait(before).over(stack("UPDATE_IN_PROGRESS", "t1"), NOW, SETTINGS)
    assert wait(before).over(stack("UPDATE_COMPLETE", "t1"), NOW, SETTINGS)


def test_with_no_list_a_step_is_woken_at_the_countdown_it_would_have_waited() -> None:
    assert not wait(["CREATE_IN_PROGRESS", ""], fallback=NOW + 0.5).over(None, NOW, SETTINGS)
    assert wait(["CREATE_IN_PROGRESS", ""], fallback=NOW).over(None, NOW, SETTINGS)


def test_a_wait_past_the_wait_timeout_wakes_its_step_whatever_the_stack_shows() -> None:
    old = wait(["CREATE_IN_PROGRESS", ""], since=NOW - SETTINGS.wait_timeout)
    assert old.over(stack("CREATE_IN_PROGRESS"), NOW, SETTINGS)
    assert old.over(None, NOW, SETTINGS)
