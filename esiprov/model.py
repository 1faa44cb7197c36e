"""Small value objects that flow watch -> plan -> chain -> publish."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from esiprov import keys


class BadConfig(ValueError):
    """A /config document esiprov cannot work from; the message says what is wrong."""


@dataclass(frozen=True)
class ResourceVersion:
    """One version of one resource, as the API server wrote it to /config."""

    rtype: str
    rid: str
    version: int
    body: dict[str, Any]
    marked_for_deletion: bool = False

    @property
    def name(self) -> str:
        """``<type>:<id>``, the form the reference system logs and stores."""
        return f"{self.rtype}:{self.rid}"

    @property
    def tenant_id(self) -> str:
        return str(self.body.get("tenant_id", ""))


def envelope_version(raw: Any) -> int:
    """The ``version`` of an envelope, 0 when it has none (so a broken document still orders)."""
    version = raw.get("version") if isinstance(raw, dict) else None
    return version if isinstance(version, int) and not isinstance(version, bool) else 0


def parse_envelope(rtype: str, rid: str, raw: Any) -> ResourceVersion:
    """Decode ``{"body", "version", "marked_for_deletion"}``; body may be a JSON string or an object."""
    where = keys.config(rtype, rid)
    if not isinstance(raw, dict):
        raise BadConfig(f"{where}: the value is not a JSON object")
    version = envelope_version(raw)
    if version < 1:
        raise BadConfig(f"{where}: 'version' must be a positive integer, got {raw.get('version')!r}")
    body = raw.get("body")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError as exc:
            raise BadConfig(f"{where}: body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise BadConfig(f"{where}: body must be a JSON object")
    return ResourceVersion(rtype, rid, version, body, bool(raw.get("marked_for_deletion", False)))


#: ``Job.on_failure``: a failed job ends its workflow; an ignored one lets its chain go on
FAIL, IGNORE = "fail", "ignore"


@dataclass
class Job:
    """A job document exactly as /jobs/all/<id> holds it (element 1 of ``[handler, job, attempts]``)."""

    id: str
    action: str
    handler: str
    resource_type: str
    resource_id: str
    version: int
    job_name: str
    is_first: bool
    is_last: bool
    #: FAIL or IGNORE
    on_failure: str
    params: list[dict[str, Any]]
    resource_input: dict[str, Any]
    dependency: list[str] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> "Job":
        return cls(**{name: doc[name] for name in cls.__dataclass_fields__})
