"""TEST-ONLY Heat resource types: failure modes that real resources show only by accident.

Never used by esiprov's shipped templates; they exist so the integration tests
can make real Heat fail on purpose.
"""
from __future__ import annotations

import uuid
from typing import NoReturn

from heat.common import exception
from heat.engine import attributes, properties, resource


class BrokenAttr(resource.Resource):
    """``Lab::BrokenAttr``: attribute ``boom`` raises at resolve time.

    Heat then still completes the stack, and the output using it carries
    ``output_error`` with ``output_value: null``: the case esiprov must keep.
    """

    properties_schema: dict = {}
    attributes_schema = {"boom": attributes.Schema("Raises when resolved.")}

    def handle_create(self) -> None:
        self.resource_id_set(str(uuid.uuid4()))

    def _resolve_attribute(self, name: str) -> NoReturn:
        raise exception.InvalidTemplateAttribute(resource=self.name, key=name)


class Fail(resource.Resource):
    """``Lab::Fail``: create always fails with ``message``, so the stack ends CREATE_FAILED."""

    properties_schema = {
        "message": properties.Schema(properties.Schema.STRING, "Reason to fail with.",
                                     default="Lab::Fail always fails (test-only resource)"),
    }

    def handle_create(self) -> NoReturn:
        raise exception.Error(self.properties["message"])


def resource_mapping() -> dict[str, type[resource.Resource]]:
    return {"Lab::BrokenAttr": BrokenAttr, "Lab::Fail": Fail}
