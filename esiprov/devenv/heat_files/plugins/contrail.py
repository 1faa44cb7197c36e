"""Local stand-ins for the Contrail Heat resource types esiprov's templates use.

Heat loads every module of the ``plugin_dirs`` directory (see heat.conf.in) and
calls ``resource_mapping()``. There is no Contrail controller locally, so these
types only record their properties in Heat. They mirror the production schema
(properties, attributes, which properties are required) so that Heat validates
our templates the way production does: an unknown property or attribute is a
400 here too. Resource ids are uuid5 of the Contrail type and fq_name, so they
are deterministic, and ``ExistingResource`` finds the same uuid that
``PhysicalRouter``/``PhysicalInterface`` gave the object, as Contrail would.
"""
from __future__ import annotations

import uuid
from typing import Any

from heat.engine import attributes, properties, resource

GLOBAL_CONFIG = "default-global-system-config"
_NAMESPACE = uuid.NAMESPACE_URL


def contrail_uuid(contrail_type: str, fq_name: list[str]) -> str:
    """The uuid Contrail would report for the object: stable across runs."""
    return str(uuid.uuid5(_NAMESPACE, contrail_type.replace("-", "_") + ":" + ":".join(fq_name)))


class ContrailResource(resource.Resource):
    """Common behaviour: deterministic id, attributes ``name``/``fq_name``, in-place updates."""

    #: Contrail object type, part of the uuid
    contrail_type = ""

    ATTRIBUTES = (NAME_ATTR, FQ_NAME_ATTR) = ("name", "fq_name")
    attributes_schema = {
        NAME_ATTR: attributes.Schema("Name of the object (last element of fq_name).",
                                     type=attributes.Schema.STRING),
        FQ_NAME_ATTR: attributes.Schema("Fully qualified name of the object.",
                                        type=attributes.Schema.LIST),
    }

    def fq_name(self) -> list[str]:
        raise NotImplementedError

    def handle_create(self) -> None:
        self.resource_id_set(contrail_uuid(self.contrail_type, self.fq_name()))

    def handle_update(self, json_snippet: Any, tmpl_diff: Any, prop_diff: dict) -> None:
        """Heat stores the new properties; there is no controller to tell."""

    def handle_delete(self) -> None:
        """Nothing outside Heat holds the object."""

    def _resolve_attribute(self, name: str) -> Any:
        fq_name = self.fq_name()
        if name == self.NAME_ATTR:
            return fq_name[-1]
        if name == self.FQ_NAME_ATTR:
            return fq_name
        return None

    def _show_resource(self) -> dict[str, Any]:
        """``get_attr: [r, show]``: the object as the controller would return it, minus secrets."""
        shown = {key: value for key, value in self.properties.items() if key != "user_credentials"}
        return {**shown, "uuid": self.resource_id, "fq_name": self.fq_name(), "name": self.fq_name()[-1]}


class PhysicalRouter(ContrailResource):
    """``OS::Contrail::PhysicalRouter``: a managed switch (an ese_device)."""

    contrail_type = "physical_router"
    PROPERTIES = (NAME, MANAGEMENT_IP, DATAPLANE_IP, VENDOR_NAME, PRODUCT_NAME, VNC_MANAGED,
                  USER_CREDENTIALS, VIRTUAL_ROUTERS) = (
        "name", "management_ip", "dataplane_ip", "vendor_name", "product_name", "vnc_managed",
        "user_credentials", "virtual_routers")
    properties_schema = {
        # The name is part of fq_name, which Contrail never renames: a new name replaces the object.
        NAME: properties.Schema(properties.Schema.STRING, "Router name.", required=True),
        MANAGEMENT_IP: properties.Schema(properties.Schema.STRING, "Management IP address.",
                                         update_allowed=True),
        DATAPLANE_IP: properties.Schema(properties.Schema.STRING, "Data-plane IP address.",
                                        update_allowed=True),
        VENDOR_NAME: properties.Schema(properties.Schema.STRING, "Vendor, e.g. Juniper.",
                                       update_allowed=True),
        PRODUCT_NAME: properties.Schema(properties.Schema.STRING, "Product, e.g. qfx5100.",
                                        update_allowed=True),
        VNC_MANAGED: properties.Schema(properties.Schema.BOOLEAN,
                                       "Whether Contrail pushes configuration to the router.",
                                       update_allowed=True),
        USER_CREDENTIALS: properties.Schema(properties.Schema.MAP,
                                            "Login of the router (username, password).",
                                            update_allowed=True),
        VIRTUAL_ROUTERS: properties.Schema(properties.Schema.LIST,
                                           "Names of the TOR agents and TSNs serving the router.",
                                           update_allowed=True),
    }

    def fq_name(self) -> list[str]:
        return [GLOBAL_CONFIG, self.properties[self.NAME]]


class PhysicalInterface(ContrailResource):
    """``OS::Contrail::PhysicalInterface``: a port of a physical router (an ese_physical_port)."""

    contrail_type = "physical_interface"
    PROPERTIES = (NAME, PHYSICAL_ROUTER) = ("name", "physical_router")
    properties_schema = {
        # Both are part of fq_name, so changing either replaces the interface.
        NAME: properties.Schema(properties.Schema.STRING, "Interface name, e.g. xe-0/0/1.",
                                required=True),
        PHYSICAL_ROUTER: properties.Schema(properties.Schema.STRING,
                                           "uuid of the owning physical router.", required=True),
    }

    def fq_name(self) -> list[str]:
        # Contrail puts the router's name in the middle; only its uuid is known here.
        return [GLOBAL_CONFIG, self.properties[self.PHYSICAL_ROUTER], self.properties[self.NAME]]


class ExistingResource(ContrailResource):
    """``OS::Contrail::ExistingResource``: look up an object made elsewhere; never deleted."""

    PROPERTIES = (FQ_NAME, RESOURCE_TYPE) = ("fq_name", "resource_type")
    properties_schema = {
        FQ_NAME: properties.Schema(properties.Schema.LIST, "Fully qualified name of the object.",
                                   required=True),
        RESOURCE_TYPE: properties.Schema(properties.Schema.STRING,
                                         "Contrail type, e.g. physical_interface.", required=True),
    }

    def fq_name(self) -> list[str]:
        return [str(part) for part in self.properties[self.FQ_NAME]]

    def handle_create(self) -> None:
        self.resource_id_set(contrail_uuid(self.properties[self.RESOURCE_TYPE], self.fq_name()))


def resource_mapping() -> dict[str, type[resource.Resource]]:
    return {
        "OS::Contrail::PhysicalRouter": PhysicalRouter,
        "OS::Contrail::PhysicalInterface": PhysicalInterface,
        "OS::Contrail::ExistingResource": ExistingResource,
    }
