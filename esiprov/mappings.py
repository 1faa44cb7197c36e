"""The reference system's parameter-mapping grammar, evaluated against one resource version.

String forms: the first character is the operator (``Pname``, ``C6``, ``Vauto_filled``,
``Fese_device+ese_device_id:hostname``, ``Mese_device:ese_device_id:id``,
``Oprimary:bgp_peer_ip``, ``ACese_device_&Pexisting``). JSON forms: ``constant``,
``field`` (+``path``, ``ignore_missing``), ``output_key`` (+``path``), ``nested``,
``concatenate``, ``if_mapping``, ``for_field``. Every evaluation gives a job param
body: a type (``value``, ``output_key`` or ``list``), a value and the resources
consulted, which the planner turns into dependencies.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

#: which type a foreign-key field of a type points at: relations[rtype][field] = type
Relations = Mapping[str, Mapping[str, str]]
#: body of a referenced resource, None when it is not in /config
Fetch = Callable[[str, str], "dict[str, Any] | None"]


class MappingError(ValueError):
    """A mapping that cannot be evaluated for this resource; the message says why."""


@dataclass(frozen=True)
class Resolved:
    type: str
    value: Any
    resources: tuple[dict[str, str], ...] = ()

    def param(self, name: str) -> dict[str, Any]:
        return {"param": name, "type": self.type, "value": self.value, "resources": list(self.resources)}


@dataclass(frozen=True)
class Subject:
    """The resource a mapping reads: its type, id, body and config version."""

    rtype: str
    body: Mapping[str, Any]
    version: int
    rid: str = ""


@dataclass(frozen=True)
class Evaluator:
    fetch: Fetch
    relations: Relations = field(default_factory=dict)

    def __call__(self, mapping: Any, subject: Subject) -> Resolved:
        if isinstance(mapping, str):
            return self._string(mapping, subject)
        if isinstance(mapping, dict):
            return self._json(mapping, subject)
        raise MappingError(f"mapping {mapping!r} is neither a string nor an object")

    # --- string forms -------------------------------------------------------------
    def _string(self, text: str, subject: Subject) -> Resolved:
        op, arg = text[:1], text[1:]
        if op == "P":
            return Resolved("value", _field(subject, arg))
        if op == "C":
            return Resolved("value", arg)
        if op == "V":
            return Resolved("value", subject.version)
        if op == "O":
            return Resolved("value", _nested(subject, arg.split(":")))
        if op == "A":
            return _concat([self._string(part, subject) for part in arg.split("&")])
        if op == "F":
            *hops, name = arg.split(":")
            target, resources = self._follow(subject, [_typed_hop(h, text) for h in hops])
            return Resolved("value", _field(target, name), resources)
        if op == "M":
            parts = arg.split(":")
            if len(parts) != 3:
                raise MappingError(f"{text!r}: expected M<type>:<fk>:<output_key>")
            return self._output(subject, [(parts[0], parts[1])], parts[2])
        raise MappingError(f"{text!r}: unknown mapping operator {op!r}")

    # --- JSON forms ---------------------------------------------------------------
    def _json(self, m: dict[str, Any], subject: Subject) -> Resolved:
        if "constant" in m:
            return Resolved("value", m["constant"])
        if "output_key" in m:
            return self._output(subject, self._hops(subject, m.get("path", [])), m["output_key"])
        if "field" in m:
            return self._path_field(m, subject)
        if "nested" in m:
            return Resolved("value", _nested(subject, m["nested"]))
        if "concatenate" in m:
            return _concat([Resolved("value", item) if isinstance(item, str) else self(item, subject)
                            for item in m["concatenate"]])
        if "if_mapping" in m:
            return self._conditional(m, subject)
        if "for_field" in m:
            return self._for_field(m, subject)
        raise MappingError(f"mapping {m!r} has no known form")

    def _path_field(self, m: dict[str, Any], subject: Subject) -> Resolved:
        try:
            target, resources = self._follow(subject, self._hops(subject, m.get("path", [])))
            return Resolved("value", _field(target, m["field"]), resources)
        except MappingError:
            if m.get("ignore_missing"):
                return Resolved("value", None)
            raise

    def _conditional(self, m: dict[str, Any], subject: Subject) -> Resolved:
        test = m["if_mapping"]
        kind = next((k for k in ("equal", "regexp") if k in test), None)
        if kind is None or len(test[kind]) != 2:
            raise MappingError(f"if_mapping {test!r} needs 'equal' or 'regexp' with two mappings")
        left, right = (self(item, subject) for item in test[kind])
        if kind == "equal":
            holds = left.value == right.value
        else:
            holds = re.search(str(right.value), str(left.value)) is not None
        branch = m.get("then_mapping" if holds else "else_mapping", {"constant": None})
        chosen = self(branch, subject)
        return Resolved(chosen.type, chosen.value, left.resources + right.resources + chosen.resources)

    def _for_field(self, m: dict[str, Any], subject: Subject) -> Resolved:
        items = _field(subject, m["for_field"])
        if not isinstance(items, list):
            raise MappingError(f"field {m['for_field']!r} of {subject.rtype} is not a list")
        spec = m["for_mapping"]
        hops = spec.get("path", [])
        if len(hops) != 1 or not isinstance(hops[0], dict):
            raise MappingError("for_mapping needs a path of one {type, id} hop")
        rtype, subkey = hops[0]["type"], hops[0].get("id", "")
        resolved = []
        for item in items:
            rid = item.get(subkey) if subkey else item
            resolved.append(_output_key(rtype, str(rid), spec["output_key"]))
        resources = tuple(r for item in resolved for r in item.resources)
        return Resolved("list", [item.param(m["for_field"]) for item in resolved], resources)

    # --- foreign keys -------------------------------------------------------------
    def _hops(self, subject: Subject, path: list[Any]) -> list[tuple[str, str]]:
        hops, rtype = [], subject.rtype
        for hop in path:
            if isinstance(hop, dict):
                rtype, fk = hop["type"], hop["id"]
            else:
                fk, rtype = hop, self._relation(rtype, hop)
            hops.append((rtype, fk))
        return hops

    def _relation(self, rtype: str, fk: str) -> str:
        try:
            return self.relations[rtype][fk]
        except KeyError:
            raise MappingError(f"no relation known for field {fk!r} of {rtype}") from None

    def _follow(self, subject: Subject, hops: list[tuple[str, str]]) -> tuple[Subject, tuple[dict[str, str], ...]]:
        resources: list[dict[str, str]] = []
        for rtype, fk in hops:
            rid = str(_field(subject, fk))
            body = self.fetch(rtype, rid)
            if body is None:
                raise MappingError(f"{rtype} {rid} (referenced by {fk} of {subject.rtype}) does not exist")
            resources.append(_ref(rtype, rid))
            subject = Subject(rtype, body, subject.version, rid)
        return subject, tuple(resources)

    def _output(self, subject: Subject, hops: list[tuple[str, str]], output_key: str) -> Resolved:
        *through, (rtype, fk) = hops
        holder, resources = self._follow(subject, through)
        out = _output_key(rtype, str(_field(holder, fk)), output_key)
        return Resolved(out.type, out.value, resources + out.resources)


def _typed_hop(hop: str, text: str) -> tuple[str, str]:
    rtype, sep, fk = hop.partition("+")
    if not sep:
        raise MappingError(f"{text!r}: hop {hop!r} must be <type>+<field>")
    return rtype, fk


def _ref(rtype: str, rid: str) -> dict[str, str]:
    return {"resource_type": rtype, "resource_id": rid}


def _output_key(rtype: str, rid: str, output_key: str) -> Resolved:
    return Resolved("output_key", {"output_key": output_key, **_ref(rtype, rid)}, (_ref(rtype, rid),))


def _field(subject: Subject, name: str) -> Any:
    if name not in subject.body:
        raise MappingError(f"field {name!r} is missing from the {subject.rtype} body")
    return subject.body[name]


def _nested(subject: Subject, path: list[str]) -> Any:
    value: Any = subject.body
    for step in path:
        if not isinstance(value, dict) or step not in value:
            raise MappingError(f"field {'.'.join(path)!r} is missing from the {subject.rtype} body")
        value = value[step]
    return value


def _concat(parts: list[Resolved]) -> Resolved:
    if any(p.value is None for p in parts):
        return Resolved("value", None, tuple(r for p in parts for r in p.resources))
    return Resolved("value", "".join(str(p.value) for p in parts), tuple(r for p in parts for r in p.resources))
