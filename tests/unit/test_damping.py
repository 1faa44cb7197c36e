"""Hold options, as the reference's agent applies them: when a new target's status may reach /monitoring."""
from __future__ import annotations

import pytest

from esiprov.damping import HOLD_ENDED, WITHHELD, BadHoldOptions, Hold, decide, writable
from esiprov.snmp import DOWN, FAIL, UP

REGISTERED = 1_000.0
HOLD = {"positive_status": [UP, DOWN], "time_seconds": 30}


def target(**extra: object) -> dict[str, object]:
    return {"type": "snmp_ports", "field": "logical_port", "registered_at": REGISTERED, "hold_options": HOLD, **extra}


def test_a_positive_status_inside_the_window_is_written_and_ends_the_hold() -> None:
    record, shown = decide(target(), UP, REGISTERED + 5)
    assert shown and record[HOLD_ENDED] is True
    assert writable(record, FAIL, REGISTERED + 6), "after the hold ended, every status is written"


def test_any_other_status_inside_the_window_is_withheld_and_marked_so() -> None:
    record, shown = decide(target(), FAIL, REGISTERED + 29.9)
    assert not shown and record[WITHHELD] is True and HOLD_ENDED not in record


def test_once_the_window_has_passed_every_status_is_written_and_no_longer_withheld() -> None:
    record, shown = decide(target(withheld=True), FAIL, REGISTERED + 30)
    assert shown and WITHHELD not in record


def test_a_target_without_hold_options_writes_every_status() -> None:
    record, shown = decide({"type": "switch", "field": "switch"}, FAIL, REGISTERED)
    assert shown and record == {"type": "switch", "field": "switch"}


@pytest.mark.parametrize("options", [[], {"time_seconds": 30}, {"positive_status": [], "time_seconds": 30},
                                     {"positive_status": [UP], "time_seconds": -1},
                                     {"positive_status": [UP], "time_seconds": "30"}, {"positive_status": UP}])
def test_malformed_hold_options_are_refused_naming_what_is_wrong(options: object) -> None:
    with pytest.raises(BadHoldOptions, match="hold_options"):
        Hold.parse(options)


def test_a_stored_target_with_malformed_hold_options_is_written_as_if_it_had_no_hold() -> None:
    record, shown = decide(target(hold_options={"positive_status": "UP"}), FAIL, REGISTERED)
    assert shown and WITHHELD not in record
