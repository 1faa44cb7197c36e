"""Heat and monitoring templates, and the schema that says which template a resource uses.

Templates live in etcd (``/config/v2.0/heat_templates/<name>``, the API server's
envelope) so operators change them without a release; ``esiprov templates load``
writes the ones shipped in ``heat_templates/``. The schema (template mappings per
handler and type, body defaults, foreign-key relations) ships beside them as
``schema.yaml`` and is stored at ``/esi-worker/schema``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import jinja2
import yaml

from esiprov import keys
from esiprov.mappings import Evaluator, Fetch, Subject
from esiprov.model import ResourceVersion, parse_envelope
from esiprov.store import Store

SHIPPED = Path(__file__).resolve().parent.parent / "heat_templates"
SCHEMA_FILE = "schema.yaml"


class TemplateError(ValueError):
    """A template or schema that cannot be used; the message names it."""


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
            return jinja2.Template(self.template_file, undefined=jinja2.StrictUndefined).render(**params)
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template {self.id}: {exc}") from None


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
            name = evaluate(by_type[resource.rtype], self.subject(resource)).value
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
    """The schema and every ``*.yaml`` template of a directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise TemplateError(f"{directory}: not a directory")
    schema = parse_schema(_yaml(directory / SCHEMA_FILE), str(directory / SCHEMA_FILE))
    found = [parse_template(_yaml(path), str(path))
             for path in sorted(directory.glob("*.yaml")) if path.name != SCHEMA_FILE]
    return schema, found


def _yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"{path}: {exc}") from None


def save(store: Store, schema: Schema, found: list[Template]) -> None:
    """Write schema and templates to etcd in one transaction, as the API server's envelopes."""
    puts: dict[str, Any] = {keys.SCHEMA: schema.document()}
    for template in found:
        key = keys.template(template.id)
        old = store.value(key)
        version = old.get("version", 0) + 1 if isinstance(old, dict) else 1
        puts[key] = {"body": json.dumps(template.body()), "version": version, "marked_for_deletion": False}
    store.commit(puts=puts)


def read_schema(store: Store) -> Schema:
    doc = store.value(keys.SCHEMA)
    if doc is None:
        raise TemplateError("no schema in etcd: run `esiprov templates load`")
    return parse_schema(doc, keys.SCHEMA)


def read(store: Store, name: str) -> Template:
    raw = store.value(keys.template(name))
    if raw is None:
        raise TemplateError(f"template {name} is not in etcd ({keys.template(name)})")
    try:
        body = parse_envelope("heat_template", name, raw).body
    except ValueError as exc:
        raise TemplateError(str(exc)) from None
    return parse_template(body, keys.template(name))

