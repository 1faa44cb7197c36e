"""Hold options: a new monitoring target's first statuses are damped for a window, as the reference's agent does.

A monitoring template may give a target ``hold_options: {positive_status: [UP, DOWN],
time_seconds: 30}``. The window opens when the target is registered and lasts
``time_seconds``. Inside it, a status in ``positive_status`` is written at once and
ends the hold; any other status (``FAIL`` while a new logical unit is still being
configured on its switch) is withheld, and /monitoring keeps its previous value or
stays absent. Once the window has passed, or the hold ended, every change is written.

The target record carries what this needs: ``registered_at`` (written by
monitoring_worker) and ``hold_ended`` (written with the first positive status).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

from esiprov.errors import Permanent

log = logging.getLogger(__name__)

#: the target fields: its hold options (from the template), when it was registered, whether a
#: positive status ended the hold, and whether a status is waiting to be written (finalize withheld it)
HOLD_OPTIONS, REGISTERED_AT, HOLD_ENDED, WITHHELD = "hold_options", "registered_at", "hold_ended", "withheld"


class BadHoldOptions(Permanent, ValueError):
    """hold_options that cannot be applied; the message says why."""


@dataclass(frozen=True)
class Hold:
    positive: tuple[str, ...]
    seconds: float

    @classmethod
    def parse(cls, options: Any) -> Hold:
        """The hold of a template's ``hold_options``; BadHoldOptions when they are malformed."""
        if not isinstance(options, Mapping):
            raise BadHoldOptions(f"hold_options must be an object with positive_status and time_seconds, "
                                 f"got {options!r}")
        positive, seconds = options.get("positive_status"), options.get("time_seconds")
        if not (isinstance(positive, list) and positive and all(isinstance(s, str) for s in positive)):
            raise BadHoldOptions(f"hold_options.positive_status must be a non-empty list of statuses, got {positive!r}")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise BadHoldOptions(f"hold_options.time_seconds must be a number of seconds >= 0, got {seconds!r}")
        return cls(tuple(positive), float(seconds))


def hold_of(target: Mapping[str, Any]) -> Hold | None:
    """The target's hold; None when it has none, a positive status ended it, or its options are
    malformed (logged: monitoring_worker refuses such a template, so only a target written by hand
    has them, and one target must not stop a poll cycle or a finalize)."""
    options = target.get(HOLD_OPTIONS)
    if options is None or target.get(HOLD_ENDED):
        return None
    try:
        return Hold.parse(options)
    except BadHoldOptions as exc:
        log.warning("%s %s: %s; its statuses are written as if it had no hold",
                    target.get("resource_type"), target.get("resource_id"), exc)
        return None


def writable(target: Mapping[str, Any], status: str, now: float) -> bool:
    """Whether ``status`` may be written to /monitoring now, under the target's hold."""
    return _writable(target, hold_of(target), status, now)


def _writable(target: Mapping[str, Any], hold: Hold | None, status: str, now: float) -> bool:
    if hold is None or status in hold.positive:
        return True
    registered = target.get(REGISTERED_AT)
    return not isinstance(registered, (int, float)) or now >= registered + hold.seconds


def decide(target: Mapping[str, Any], status: str, now: float) -> tuple[dict[str, Any], bool]:
    """(the target record to keep, whether /monitoring may show ``status`` now).

    A withheld status marks the record ``withheld`` (the poller writes /monitoring once the hold
    allows, creating it if finalize could not); a positive status inside the window ends the hold.
    """
    record, hold = dict(target), hold_of(target)
    if not _writable(target, hold, status, now):
        record[WITHHELD] = True
        return record, False
    record.pop(WITHHELD, None)
    if hold is not None and status in hold.positive:
        record[HOLD_ENDED] = True
    return record, True
