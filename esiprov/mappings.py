"""The reference system's parameter-mapping grammar: parsed once into a small tree, then evaluated.

String forms: the first character is the operator (``Pname``, ``C6``, ``Vauto_filled``,
``Fese_device+ese_device_id:hostname``, ``Mese_device:ese_device_id:id``,
``Oprimary:bgp_peer_ip``, ``ACese_device_&Pexisting``). JSON forms: ``constant``,
``field`` (+``path``, ``ignore_missing``), ``output_key`` (+``path``), ``nested``,
``concatenate``, ``if_mapping``, ``for_field``. ``parse`` turns a mapping into an ``Expr``
(or a ``MappingError`` saying what is malformed), so ``esiprov templates load`` can refuse a
bad template before any resource uses it. Evaluating an ``Expr`` gives a job param body: a
type (``value``, ``output_key`` or ``list``), a value and the resources consulted, which
the planner turns into dependencies.
"""
from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from esiprov.errors import Permanent

#: which type a foreign-key field of a type points at: relations[rtype][field] = type
Relations = Mapping[str, Mapping[str, str]]
#: body of a referenced resource, None when it is not in /config
Fetch = Callable[[str, str], "dict[str, Any] | None"]
Refs = tuple[dict[str, str], ...]

TESTS = ("equal", "regexp")


class MappingError(Permanent, ValueError):
    """A mapping that is malformed, or cannot be evaluated for this resource; the message says why."""


@dataclass(frozen=True)
class Resolved:
    type: str
    value: Any
    resources: Refs = ()

    def param(self, name: str) -> dict[str, Any]:
        """The job param ``name``; the items of a ``list`` param are named after it too, as recorded."""
        value = [{**item, "param": name} for item in self.value] if self.type == "list" else self.value
        return {"param": name, "type": self.type, "value": value, "resources": list(self.resources)}


@dataclass(frozen=True)
class Subject:
    """The resource a mapping reads: its type, id, body and config version."""

    rtype: str
    body: Mapping[str, Any]
    version: int
    rid: str = ""


# --- the tree ---------------------------------------------------------------------
@dataclass(frozen=True)
class Hop:
    """One foreign-key step: the body field holding the id, and the type it points at
    (None: looked up in the relations when evaluated, as JSON paths of bare names need)."""

    fk: str
    rtype: str | None = None


class Expr:
    """A parsed mapping."""

    def evaluate(self, ev: Evaluator, subject: Subject) -> Resolved:
        raise NotImplementedError


@dataclass(frozen=True)
class Const(Expr):
    value: Any

    def evaluate(self, ev: Evaluator, subject: Subject) -> Resolved:
        # parsed trees are cached and shared: a list or object constant must not be shared with jobs
        return Resolved("value", copy.deepcopy(self.value))


@dataclass(frozen=True)
class Version(Expr):
    def evaluate(self, ev: Evaluator, subject: Subject) -> Resolved:
        return Resolved("value", subject.version)


@dataclass(frozen=True)
class Field(Expr):
    """A body field of this resource, or of the one the hops lead to."""

    name: str
    hops: tuple[Hop, ...] = ()
    ignore_missing: bool = False

    def evaluate(self, ev: Evaluator, subject: Subject) -> Resolved:
        try:
            target, resources = ev.follow(subject, self.hops)
            return Resolved("value", _field(target, self.name), resources)
        except MappingError:
            if self.ignore_missing:
                return Resolved("value", None)
            raise


@dataclass(frozen=True)
class Nested(Expr):
    path: tuple[str, ...]

    def evaluate(self, ev: Evaluator, subject: Subject) -> Resolved:
        value: Any = subject.body
        for step in self.path:
            if not isinstance(value, dict) or step not in value:
                raise MappingError(f"field {'.'.join(self.path)!r} is missing from the {subject.rtype} body")
            value = value[step]
        return Resolved("value", value)


@dataclass(frozen=True)
class Output(Expr):
    """A stack output of the resource the hops lead to; the worker reads it when the job runs."""

    key: str
    hops: tuple[Hop, ...]

    def evaluate(self, ev: Evaluator, subject: Subject) -> Resolved:
        target, resources = ev.follow(subject, self.hops)
        return Resolved("output_key", _output_value(target.rtype, target.rid, self.key), resources)


@dataclass(frozen=True)
class Concat(Expr):
    parts: tuple[Expr, ...]

    def evaluate(self, ev: Evaluator, subject: Subject) -> Resolved:
        parts = [part.evaluate(ev, subject) for part in self.parts]
        resources = tuple(r for p in parts for r in p.resources)
        if any(p.value is None for p in parts):
            return Resolved("value", None, resources)
        return Resolved("value", "".join(str(p.value) for p in parts), resources)


@dataclass(frozen=True)
class Cond(Expr):
    test: str
    left: Expr
    right: Expr
    then: Expr
    otherwise: Expr

    def evaluate(self, ev: Evaluator, subject: Subject) -> Resolved:
        left, right = self.left.evaluate(ev, subject), self.right.evaluate(ev, subject)
        holds = left.value == right.value if self.test == "equal" else _search(right.value, left.value)
        chosen = (self.then if holds else self.otherwise).evaluate(ev, subject)
        return Resolved(chosen.type, chosen.value, left.resources + right.resources + chosen.resources)


@dataclass(frozen=True)
class ForEach(Expr):
    """A ``list`` param: one ``output_key`` item per element (or element[subkey]) of a list field.

    As the reference system records it (ese_logical_port's ``virtual_machine_interface_ids``), the
    list param lists every referenced resource and its items none: one place to find dependencies.
    """

    field: str
    rtype: str
    subkey: str
    key: str

    def evaluate(self, ev: Evaluator, subject: Subject) -> Resolved:
        items = _field(subject, self.field)
        if not isinstance(items, list):
            raise MappingError(f"field {self.field!r} of the {subject.rtype} body is {_kind(items)}, not a list")
        ids = [self._id(i, item) for i, item in enumerate(items)]
        params = [Resolved("output_key", _output_value(self.rtype, rid, self.key)).param(self.field) for rid in ids]
        return Resolved("list", params, tuple(_ref(self.rtype, rid) for rid in ids))

    def _id(self, index: int, item: Any) -> str:
        what = f"item {index} of field {self.field!r}"
        if not self.subkey:
            return _as_id(item, what, self.rtype)
        if not isinstance(item, dict) or self.subkey not in item:
            raise MappingError(f"{what} has no {self.subkey!r}")
        return _as_id(item[self.subkey], f"{what}.{self.subkey}", self.rtype)


# --- evaluation -------------------------------------------------------------------
@dataclass(frozen=True)
class Evaluator:
    """What evaluation needs beyond the tree: other resources' bodies, and which type a bare
    foreign-key name points at (both from etcd and the schema, so tests can give their own)."""

    fetch: Fetch
    relations: Relations = field(default_factory=dict)

    def __call__(self, mapping: Any, subject: Subject) -> Resolved:
        """Evaluate a mapping (raw, or already parsed) for one resource version."""
        expr = mapping if isinstance(mapping, Expr) else parse(mapping)
        return expr.evaluate(self, subject)

    def param(self, name: str, mapping: Any, subject: Subject) -> dict[str, Any]:
        """The job param ``name``; an error names the parameter and its mapping, for /state.error."""
        return self.labelled(f"parameter {name}", mapping, subject).param(name)

    def labelled(self, label: str, mapping: Any, subject: Subject) -> Resolved:
        """Evaluate, prefixing any error with ``label (mapping):`` so the operator knows which one failed."""
        try:
            return self(mapping, subject)
        except MappingError as exc:
            raise located(label, mapping, exc) from None

    def follow(self, subject: Subject, hops: tuple[Hop, ...]) -> tuple[Subject, Refs]:
        """The resource the hops lead to, and every resource on the way (the param's ``resources``)."""
        resources = []
        for hop in hops:
            rtype = hop.rtype or self._relation(subject.rtype, hop.fk)
            rid = _as_id(_field(subject, hop.fk), f"field {hop.fk!r} of the {subject.rtype} body", rtype)
            body = self.fetch(rtype, rid)
            if body is None:
                raise MappingError(f"{rtype} {rid} (referenced by {hop.fk} of {subject.rtype}) does not exist")
            resources.append(_ref(rtype, rid))
            subject = Subject(rtype, body, subject.version, rid)
        return subject, tuple(resources)

    def _relation(self, rtype: str, fk: str) -> str:
        try:
            return self.relations[rtype][fk]
        except KeyError:
            raise MappingError(f"no relation says which type field {fk!r} of {rtype} points at") from None


def _field(subject: Subject, name: str) -> Any:
    if name not in subject.body:
        raise MappingError(f"field {name!r} is missing from the {subject.rtype} body")
    return subject.body[name]


def _as_id(value: Any, what: str, rtype: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise MappingError(f"{what} is {_show(value)}, not an id of {rtype}")
    return str(value)


def _ref(rtype: str, rid: str) -> dict[str, str]:
    return {"resource_type": rtype, "resource_id": rid}


def _output_value(rtype: str, rid: str, key: str) -> dict[str, str]:
    return {"output_key": key, **_ref(rtype, rid)}


def _search(pattern: Any, value: Any) -> bool:
    try:
        return re.search(str(pattern), str(value)) is not None
    except re.error as exc:
        raise MappingError(f"regexp {str(pattern)!r} is invalid: {exc}") from None


# --- parsing ----------------------------------------------------------------------
def parse(mapping: Any) -> Expr:
    """The tree of a mapping; a MappingError names the malformed part and what was expected.

    Each distinct mapping is parsed once per process: templates are re-read for every job.
    """
    try:
        text = json.dumps(mapping)
    except (TypeError, ValueError):
        return _parse(mapping)  # not JSON at all: _parse says why
    return _parse_json(text)


@lru_cache(maxsize=4096)
def _parse_json(text: str) -> Expr:
    return _parse(json.loads(text))


def located(label: str, mapping: Any, exc: MappingError) -> MappingError:
    """``<label> (<mapping>): <why>``: which parameter (or template choice) failed, and its mapping.

    A parse error of the whole mapping already starts with it; that is not repeated.
    """
    why, whole = str(exc), f"{_show(mapping)}: "
    return MappingError(f"{label} ({_source(mapping)}): {why.removeprefix(whole)}")


def _source(mapping: Any) -> str:
    """A mapping as an operator wrote it, for messages."""
    return mapping if isinstance(mapping, str) else _show(mapping, limit=0)


def _parse(mapping: Any) -> Expr:
    if isinstance(mapping, str):
        return _parse_string(mapping)
    if isinstance(mapping, dict):
        return _parse_object(mapping)
    raise _bad(mapping, f"a mapping is a string or an object, not {_kind(mapping)}")


def _parse_string(text: str) -> Expr:
    op, arg = text[:1], text[1:]
    if op == "C":
        return Const(arg)
    if op == "V":
        return Version()
    if op == "P":
        return Field(_name(arg, text, "P<field>"))
    if op == "O":
        return Nested(tuple(_names(arg.split(":"), text, "O<field>:<sub>", least=2)))
    if op == "F":
        expected = "F<type>+<fk>:[<type>+<fk>:…]<field>"
        *hops, name = _names(arg.split(":"), text, expected, least=2)
        return Field(name, tuple(_typed_hop(hop, text, expected) for hop in hops))
    if op == "M":
        rtype, fk, key = _names(arg.split(":"), text, "M<type>:<fk>:<output_key>", least=3, most=3)
        return Output(key, (Hop(fk, rtype),))
    if op == "A":
        return Concat(tuple(_parse_string(part) for part in _names(arg.split("&"), text, "A<expr>&<expr>…")))
    if not text:
        raise _bad(text, "an empty string is not a mapping")
    raise _bad(text, f"unknown operator {op!r} (a string mapping starts with one of P C V F M O A)")


def _name(value: Any, where: Any, expected: str) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(where, f"expected {expected}: {_show(value)} is not a name")
    return value


def _names(parts: list[str], text: str, expected: str, least: int = 1, most: int | None = None) -> list[str]:
    if len(parts) < least or (most is not None and len(parts) > most):
        raise _bad(text, f"expected {expected}")
    if not all(parts):
        raise _bad(text, f"expected {expected}: part {parts.index('') + 1} is empty")
    return parts


def _typed_hop(hop: str, text: str, expected: str) -> Hop:
    rtype, sep, fk = hop.partition("+")
    if not (sep and rtype and fk):
        raise _bad(text, f"expected {expected}: hop {hop!r} is not <type>+<fk>")
    return Hop(fk, rtype)


def _parse_object(m: dict[Any, Any]) -> Expr:
    forms = [key for key in FORMS if key in m]
    if len(forms) != 1:
        found = f"more than one form ({', '.join(forms)})" if forms else "no form"
        raise _bad(m, f"{found}: an object mapping has exactly one of {', '.join(FORMS)}")
    form = forms[0]
    unknown = [key for key in m if key != form and key not in FORMS[form].others]
    if unknown:
        raise _bad(m, f"unknown key {', '.join(map(_show, unknown))} beside {form!r} "
                      f"(it may have {', '.join(FORMS[form].others) or 'no other key'})")
    return FORMS[form].build(m)


def _form_constant(m: dict[str, Any]) -> Expr:
    return Const(m["constant"])


def _form_field(m: dict[str, Any]) -> Expr:
    ignore = m.get("ignore_missing", False)
    if not isinstance(ignore, bool):
        raise _bad(m, f"ignore_missing is {_show(ignore)}, not true or false")
    return Field(_name(m["field"], m, "a field name"), _path(m, m.get("path", [])), ignore)


def _form_output_key(m: dict[str, Any]) -> Expr:
    hops = _path(m, m.get("path", []))
    if not hops:
        raise _bad(m, "an output_key mapping needs a path to the resource whose stack has the output")
    return Output(_name(m["output_key"], m, "an output key"), hops)


def _path(m: dict[str, Any], path: Any) -> tuple[Hop, ...]:
    if not isinstance(path, list):
        raise _bad(m, f"path is {_kind(path)}, not a list")
    return tuple(_hop(m, hop) for hop in path)


def _hop(m: dict[str, Any], hop: Any) -> Hop:
    if isinstance(hop, str) and hop:
        return Hop(hop)
    if isinstance(hop, dict) and set(hop) == {"type", "id"} and all(isinstance(v, str) and v for v in hop.values()):
        return Hop(hop["id"], hop["type"])
    raise _bad(m, f"path step {_show(hop)} is neither a foreign-key field name nor {{\"type\": …, \"id\": …}}")


def _form_nested(m: dict[str, Any]) -> Expr:
    steps = m["nested"]
    if not isinstance(steps, list) or not steps:
        raise _bad(m, "nested needs a non-empty list of field names")
    return Nested(tuple(_name(step, m, "field names in nested") for step in steps))


def _form_concatenate(m: dict[str, Any]) -> Expr:
    items = m["concatenate"]
    if not isinstance(items, list) or not items:
        raise _bad(m, "concatenate needs a non-empty list of mappings or literal strings")
    return Concat(tuple(Const(item) if isinstance(item, str) else _parse(item) for item in items))


def _form_if_mapping(m: dict[str, Any]) -> Expr:
    test = m["if_mapping"]
    expected = 'if_mapping needs {"equal": [m1, m2]} or {"regexp": [m, pattern]}'
    if not isinstance(test, dict) or len(test) != 1 or next(iter(test)) not in TESTS:
        raise _bad(m, expected)
    kind, operands = next(iter(test.items()))
    if not isinstance(operands, list) or len(operands) != 2:
        raise _bad(m, f"{expected}: {kind} has {_show(operands)}, not a list of two mappings")
    left, right = (_parse(operand) for operand in operands)
    if kind == "regexp" and isinstance(right, Const):
        try:
            _search(right.value, "")  # a constant pattern is checked now, not when a resource uses it
        except MappingError as exc:
            raise _bad(m, str(exc)) from None
    branches = (_parse(m[key]) if key in m else Const(None) for key in ("then_mapping", "else_mapping"))
    return Cond(kind, left, right, *branches)


def _form_for_field(m: dict[str, Any]) -> Expr:
    spec = m.get("for_mapping")
    expected = 'for_mapping needs {"path": [{"type": …, "id": <subkey or "">}], "output_key": …}'
    if not isinstance(spec, dict) or set(spec) != {"path", "output_key"}:
        raise _bad(m, expected)
    path = spec["path"]
    if not (isinstance(path, list) and len(path) == 1 and isinstance(path[0], dict) and set(path[0]) == {"type", "id"}
            and isinstance(path[0]["id"], str)):
        raise _bad(m, expected)
    rtype = _name(path[0]["type"], m, "a resource type in for_mapping's path")
    return ForEach(_name(m["for_field"], m, "a list field name"), rtype, path[0]["id"],
                   _name(spec["output_key"], m, "an output key"))


class Form(NamedTuple):
    """One JSON form of a mapping: how it is built, and the keys it may have beside its own."""

    build: Callable[[dict[str, Any]], Expr]
    others: tuple[str, ...] = ()


#: the JSON forms, by their key
FORMS: dict[str, Form] = {
    "constant": Form(_form_constant), "field": Form(_form_field, ("path", "ignore_missing")),
    "output_key": Form(_form_output_key, ("path",)), "nested": Form(_form_nested),
    "concatenate": Form(_form_concatenate), "if_mapping": Form(_form_if_mapping, ("then_mapping", "else_mapping")),
    "for_field": Form(_form_for_field, ("for_mapping",))}


def _bad(fragment: Any, why: str) -> MappingError:
    return MappingError(f"{_show(fragment)}: {why}")


def _show(value: Any, limit: int = 120) -> str:
    """A value as JSON (strings quoted), cut to ``limit`` characters (0: whole)."""
    try:
        text = repr(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if not limit or len(text) <= limit else text[:limit - 1] + "…"


def _kind(value: Any) -> str:
    names = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)
