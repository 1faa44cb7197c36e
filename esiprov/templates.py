"""Heat and monitoring templates, and the schema that says which template a resource uses.

Templates live in etcd (``/config/v2.0/heat_templates/<name>``, the API server's
envelope) so operators change them without a release; ``esiprov templates load``
writes the ones shipped in ``heat_templates/``. The schema (template mappings per
handler and type, body defaults, foreign-key relations) ships beside them as
``schema.yaml`` and is stored at ``/esi-worker/schema``. Templates and schema are
validated before anything is written: a bad template found when a resource uses it
would fail that resource's jobs, long after the operator who wrote it has moved on.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import jinja2
import jinja2.meta
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from esiprov import keys, steps
from esiprov.documents import ResourceVersion, parse_envelope
from esiprov.errors import Permanent
from esiprov.mappings import Evaluator, Fetch, MappingError, Subject, located, parse
from esiprov.store import Entry, Store

T = TypeVar("T")


def _shipped() -> Path:
    """Where the shipped templates are: in the installed package, or at the checkout's root.

    A wheel carries the checkout's ``heat_templates/`` as ``esiprov/heat_templates`` (setup.cfg's
    package_dir), so an install works from any directory; a checkout (and an editable install of
    it) keeps them at its root, where operators edit them.
    """
    package = Path(__file__).resolve().parent
    installed = package / "heat_templates"
    return installed if installed.is_dir() else package.parent / "heat_templates"


SHIPPED = _shipped()
SCHEMA_FILE = "schema.yaml"
HEAT, MONITORING = steps.HEAT_WORKER.name, steps.MONITORING_WORKER.name
#: the handlers a template may name (esiprov.steps)
HANDLERS = tuple(steps.HANDLERS)
#: params that are not HOT parameters: the stack timeout, and the variables of Jinja templates
TIMEOUT_PARAM, JINJA_PREFIX = "heat_timeout", "jinja_"


class TemplateError(Permanent, ValueError):
    """A template or schema that cannot be used; the message names it."""


#: what a template is told when the sandbox stops it (the /state.error of its jobs)
UNSAFE = "the template tried something unsafe, which the sandbox refused"


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, failing at the first unsafe access.

    Templates come from etcd: whoever can write ``/config/v2.0/heat_templates/`` must not
    get code run in every worker (nor in ``esiprov templates load``). The stock sandbox turns
    an unsafe attribute into an undefined value that fails only when it is used; raising at
    once makes the load-time check, whose undefined values are lenient, refuse exactly what
    the workers would.
    """

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")


#: the workers' renderer: a variable no param supplies is an error, not an empty string
_RENDERER = _Sandbox(undefined=jinja2.StrictUndefined)
#: the load-time check's renderer: placeholders stand for the params, anything else chains
_CHECKER = _Sandbox(undefined=jinja2.ChainableUndefined)


@dataclass(frozen=True)
class Template:
    id: str
    handler: str
    template_file: str
    parameter_mappings: dict[str, Any]
    watch: list[str] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        return {"id": self.id, "handler": self.handler, "watch": self.watch,
                "template_file": self.template_file, "parameter_mappings": self.parameter_mappings}

    def render(self, params: Mapping[str, Any]) -> str:
        """The template text with ``jinja_*`` params (and any other) substituted."""
        try:
            return _compiled(self.template_file).render(**params)
        except SecurityError as exc:
            raise TemplateError(f"template {self.id}: {UNSAFE} ({exc})") from None
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template {self.id}: {exc}") from None


@functools.lru_cache(maxsize=256)
def _compiled(text: str) -> jinja2.Template:
    """Compiling costs milliseconds, rendering microseconds: every job step renders the same few texts."""
    return _RENDERER.from_string(text)


@dataclass(frozen=True)
class Schema:
    #: handler -> resource type -> mapping that yields the template name (null: not workable)
    template_mappings: dict[str, dict[str, Any]]
    #: resource type -> body field defaults applied before mappings are evaluated
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: resource type -> foreign-key field -> referenced type
    relations: dict[str, dict[str, str]] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        return {"template_mappings": self.template_mappings, "defaults": self.defaults,
                "relations": self.relations}

    def subject(self, resource: ResourceVersion) -> Subject:
        body = {**self.defaults.get(resource.rtype, {}), **resource.body}
        return Subject(resource.rtype, body, resource.version, resource.rid)

    def evaluator(self, fetch: Fetch) -> Evaluator:
        return Evaluator(fetch, self.relations)

    def choose(self, resource: ResourceVersion, fetch: Fetch) -> list[tuple[str, str]]:
        """[(handler, template name)] for the resource, in chain order; [] when it is not workable."""
        evaluate = self.evaluator(fetch)
        chosen = []
        for handler, by_type in self.template_mappings.items():
            if resource.rtype not in by_type:
                continue
            label = f"{handler} template mapping of {resource.rtype}"
            name = evaluate.labelled(label, by_type[resource.rtype], self.subject(resource)).value
            if name is not None:
                chosen.append((handler, str(name)))
        return chosen


def parse_schema(doc: Any, where: str) -> Schema:
    if not isinstance(doc, dict) or not isinstance(doc.get("template_mappings"), dict):
        raise TemplateError(f"{where}: a schema needs a 'template_mappings' object")
    return Schema(doc["template_mappings"], doc.get("defaults") or {}, doc.get("relations") or {})


def parse_template(doc: Any, where: str) -> Template:
    if not isinstance(doc, dict):
        raise TemplateError(f"{where}: a template must be an object")
    missing = [k for k in ("id", "handler", "template_file", "parameter_mappings") if k not in doc]
    if missing:
        raise TemplateError(f"{where}: missing {', '.join(missing)}")
    if not isinstance(doc["parameter_mappings"], dict):
        raise TemplateError(f"{where}: parameter_mappings must be an object")
    return Template(str(doc["id"]), str(doc["handler"]), str(doc["template_file"]),
                    dict(doc["parameter_mappings"]), list(doc.get("watch") or []))


def load_dir(directory: Path) -> tuple[Schema, list[Template]]:
    """The schema and every ``*.yaml`` template of a directory, validated; one TemplateError lists every problem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise TemplateError(f"{directory}: not a directory")
    problems: list[str] = []
    schema = _collect(problems, parse_schema, directory / SCHEMA_FILE)
    found = [template for path in sorted(directory.glob("*.yaml")) if path.name != SCHEMA_FILE
             if (template := _collect(problems, parse_template, path)) is not None]
    problems += problems_of(schema, found)
    if problems or schema is None:
        raise TemplateError(_report(problems))
    return schema, found


def _collect(problems: list[str], parse_doc: Callable[[Any, str], T], path: Path) -> T | None:
    """The parsed file, or None with its problem appended: every file's problems are reported at once."""
    try:
        return parse_doc(_yaml(path), str(path))
    except TemplateError as exc:
        problems.append(str(exc))
        return None


def _yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise TemplateError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path}: not valid YAML ({_yaml_problem(exc)})") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: PyYAML's own message spans several, with the offending text."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}: " if mark is not None else ""
    return where + str(getattr(exc, "problem", None) or " ".join(str(exc).split()))


def validate(schema: Schema | None, found: list[Template]) -> None:
    """Raise one TemplateError listing every problem of the schema and templates (one per line)."""
    problems = problems_of(schema, found)
    if problems:
        raise TemplateError(_report(problems))


def _report(problems: list[str]) -> str:
    count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
    return f"{count} in the templates; nothing was written:\n" + "\n".join(f"  {p}" for p in problems)


def problems_of(schema: Schema | None, found: list[Template]) -> list[str]:
    ids = [t.id for t in found]
    problems = [f"template {name}: defined more than once" for name in dict.fromkeys(ids) if ids.count(name) > 1]
    problems += schema_problems(schema) if schema is not None else []
    return problems + [p for template in found for p in template_problems(template)]


def schema_problems(schema: Schema) -> list[str]:
    """Handlers known, template mappings parse, relations and defaults have the right shape."""
    problems = []
    for handler, by_type in schema.template_mappings.items():
        where = f"schema template_mappings {handler}"
        if handler not in HANDLERS:
            problems.append(f"{where}: unknown handler (known: {', '.join(HANDLERS)})")
        if not isinstance(by_type, dict):
            problems.append(f"{where}: must map resource types to template mappings")
            continue
        problems += [error for rtype, mapping in by_type.items()
                     for error in _mapping_problems(f"{where} {rtype}", mapping)]
    if not _by_type(schema.relations, str):
        problems.append("schema relations: must map each resource type to {foreign-key field: type}")
    if not _by_type(schema.defaults, object):
        problems.append("schema defaults: must map each resource type to {field: default value}")
    return problems


def _by_type(table: Any, kind: type) -> bool:
    """Whether ``table`` is {resource type: {field: <kind>}}."""
    return isinstance(table, dict) and all(
        isinstance(fields, dict) and all(isinstance(v, kind) for v in fields.values()) for fields in table.values())


def template_problems(template: Template) -> list[str]:
    """Handler known, mappings parse, the text renders, and (HOT) every mapped parameter exists."""
    where = f"template {template.id}"
    problems = [] if template.handler in HANDLERS else \
        [f"{where}: unknown handler {template.handler!r} (known: {', '.join(HANDLERS)})"]
    problems += [error for name, mapping in template.parameter_mappings.items()
                 for error in _mapping_problems(f"{where} parameter {name}", mapping)]
    try:
        document = yaml.safe_load(_render_placeholders(template))
    except TemplateError as exc:
        return problems + [f"{where}: {exc}"]
    except yaml.YAMLError as exc:
        return problems + [f"{where}: template_file is not valid YAML ({_yaml_problem(exc)})"]
    if template.handler == MONITORING and not _one_target(document):
        problems.append(f"{where}: template_file must render to one field whose value describes the target")
    if template.handler == HEAT:
        problems += _hot_problems(template, document, where)
    return problems


def _mapping_problems(label: str, mapping: Any) -> list[str]:
    try:
        parse(mapping)
    except MappingError as exc:
        return [str(located(label, mapping, exc))]
    return []


def _render_placeholders(template: Template) -> str:
    """The text rendered as the worker renders it, each variable standing for itself.

    Heat templates see only ``jinja_*`` params, monitoring templates every param; a variable
    no param supplies would fail every job of the template.
    """
    try:
        variables = jinja2.meta.find_undeclared_variables(_CHECKER.parse(template.template_file))
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template_file is not a valid Jinja template (line {exc.lineno}: {exc.message})") from None
    supplied = {p for p in template.parameter_mappings if template.handler != HEAT or p.startswith(JINJA_PREFIX)}
    unsupplied = sorted(variables - supplied)
    if unsupplied:
        kind = "jinja_* parameter" if template.handler == HEAT else "parameter"
        raise TemplateError(f"template_file uses {', '.join(unsupplied)}, which no {kind} maps")
    try:
        return _CHECKER.from_string(template.template_file).render({name: _Placeholder(name) for name in variables})
    except SecurityError as exc:
        raise TemplateError(f"{UNSAFE} ({exc})") from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template_file does not render: {exc}") from None


class _Placeholder(str):
    """A variable's stand-in: its own name; a one-item list where the template loops over it;
    an object whose attributes (or items) stand for themselves too."""

    def __iter__(self) -> Any:
        return iter([self])

    def __getattr__(self, name: str) -> _Placeholder:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(name)


def _one_target(document: Any) -> bool:
    return isinstance(document, dict) and len(document) == 1 and isinstance(next(iter(document.values())), dict)


def _hot_problems(template: Template, document: Any, where: str) -> list[str]:
    """HOT shape, mapped parameters that Heat does not declare, declared ones Heat would lack."""
    if not isinstance(document, dict) or "heat_template_version" not in document:
        return [f"{where}: template_file has no heat_template_version (not a HOT template)"]
    declared = document.get("parameters") or {}
    if not isinstance(declared, dict):
        return [f"{where}: template_file's parameters must be a mapping"]
    sent = [p for p in template.parameter_mappings if p != TIMEOUT_PARAM and not p.startswith(JINJA_PREFIX)]
    problems = [f"{where} parameter {name}: not declared in the template's HOT parameters" for name in sent
                if name not in declared]
    return problems + [f"{where} parameter {name}: declared without a default but not mapped "
                       "(Heat would refuse the stack)"
                       for name, spec in declared.items()
                       if name not in sent and not (isinstance(spec, dict) and "default" in spec)]


def save(store: Store, schema: Schema, found: list[Template]) -> None:
    """Validate, then write schema and templates to etcd in one transaction, as the API server's envelopes."""
    validate(schema, found)
    puts: dict[str, Any] = {keys.SCHEMA: schema.document()}
    for template in found:
        key = keys.template(template.id)
        old = store.value(key)
        version = old.get("version", 0) + 1 if isinstance(old, dict) else 1
        puts[key] = {"body": json.dumps(template.body()), "version": version, "marked_for_deletion": False}
    store.commit(puts=puts)


def read(store: Store, name: str) -> Template:
    return _template_of(name, store.get(keys.template(name)))


def _schema_of(entry: Entry | None) -> Schema:
    if entry is None:
        raise TemplateError("no schema in etcd: run `esiprov templates load`")
    return _parsed(entry, lambda doc: parse_schema(doc, keys.SCHEMA))


def _template_of(name: str, entry: Entry | None) -> Template:
    if entry is None:
        raise TemplateError(f"template {name} is not in etcd ({keys.template(name)})")
    return _parsed(entry, lambda raw: _template_of_envelope(name, raw))


#: the template names each resource type was last planned with, read beside the schema next time.
#: Only a guess of what to read: a name it lacks costs one more read, a name no longer chosen a
#: few bytes; what is planned with is always what etcd holds at the read.
_usual: dict[str, tuple[str, ...]] = {}


@dataclass
class Catalogue:
    """The schema and templates as etcd holds them now, read in the same round trip as the resource's
    own keys (``read_catalogue``).

    Why not a cache: a cached template would be stale the moment an operator changes it, and the
    schema lives outside /config, so the watcher's event order cannot tell a planner when to drop
    it; nor do resync, finalize and the workers watch anything. Reading both in the transaction
    that reads the config costs no round trip of its own and is never older than the config.
    """

    store: Store
    rtype: str
    schema_entry: Entry | None
    #: template name -> its entry as read (None: absent)
    found: dict[str, Entry | None]

    @property
    def schema(self) -> Schema:
        """The schema; TemplateError when etcd has none (raised only when a plan needs it)."""
        return _schema_of(self.schema_entry)

    def choose(self, resource: ResourceVersion, fetch: Fetch) -> list[tuple[str, str]]:
        """``Schema.choose``, with every chosen template read (one round trip for those not read yet)."""
        chosen = self.schema.choose(resource, fetch)
        names = tuple(name for _, name in chosen)
        missing = [name for name in names if name not in self.found]
        if missing:
            self.found.update(zip(missing, self.store.get_many([keys.template(name) for name in missing])))
        _usual[self.rtype] = names
        return chosen

    def template(self, name: str) -> Template:
        if name not in self.found:
            self.found[name] = self.store.get(keys.template(name))
        return _template_of(name, self.found[name])


def read_catalogue(store: Store, rtype: str, *extra: str) -> tuple[list[Entry | None], Catalogue]:
    """The ``extra`` keys' entries and the catalogue for planning an ``rtype``, in one round trip at one revision."""
    names = _usual.get(rtype, ())
    entries = store.get_many([*extra, keys.SCHEMA, *(keys.template(name) for name in names)])
    schema_at = len(extra)
    found = dict(zip(names, entries[schema_at + 1:]))
    return entries[:schema_at], Catalogue(store, rtype, entries[schema_at], found)


def _template_of_envelope(name: str, raw: Any) -> Template:
    try:
        body = parse_envelope("heat_template", name, raw).body
    except ValueError as exc:
        raise TemplateError(str(exc)) from None
    return parse_template(body, keys.template(name))


#: parsed schema and templates by (key, mod_revision): every job step reads them, they rarely change
_parsed_cache: dict[tuple[str, int], Any] = {}
MAX_PARSED = 256


def _parsed(entry: Entry, parse: Callable[[Any], T]) -> T:
    """``parse(entry.value)``, once per revision of the key: the same revision is the same document."""
    key = (entry.key, entry.mod_revision)
    found: T | None = _parsed_cache.get(key)
    if found is None:  # kept in a local: another step thread may clear the cache meanwhile
        found = parse(entry.value)
        if len(_parsed_cache) >= MAX_PARSED:
            _parsed_cache.clear()
        _parsed_cache[key] = found
    return found
