"""Local stand-ins for the Contrail Heat resource types esiprov's templates use.

Heat loads every module of the ``plugin_dirs`` directory (see heat.conf.in) and
calls ``resource_mapping()``. There is no Contrail controller locally, so these
types only record their properties in Heat. They mirror the production schema
(properties, attributes, which properties are required) so that Heat validates
our templates the way production does: an unknown property or attribute is a
400 here too. Resource ids are uuid5 of the Contrail type and fq_name, so they
are deterministic, and ``ExistingResource`` finds the same uuid that
``PhysicalRouter``/``PhysicalInterface`` gave the object, as Contrail would.

The tenant network types (``VirtualNetwork``, ``VirtualMachineInterface``,
``InstanceIp``) and ``LogicalInterface`` (a VLAN unit of a physical interface)
serve the shipped network, port and ese_logical_port templates the same way:
their state is their properties in Heat's DB, and their attributes are derived
from those properties and the deterministic id, as the templates' outputs need.
"""
from __future__ import annotations

import uuid
from typing import Any

from heat.engine import attributes, constraints, properties, resource

GLOBAL_CONFIG = "default-global-system-config"
#: the Contrail domain tenant objects live in; the project is the tenant id
DOMAIN = "default-domain"
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


class TenantResource(ContrailResource):
    """A Contrail object in a tenant's project: fq_name ``[default-domain, <project>, <name>]``.

    The name and project are part of fq_name, which Contrail never renames: changing either
    replaces the object (neither is ``update_allowed``).
    """

    NAME, PROJECT = "name", "project"
    _tenant_properties = {
        NAME: properties.Schema(properties.Schema.STRING, "Object name (esiprov maps the resource id).",
                                required=True),
        PROJECT: properties.Schema(properties.Schema.STRING, "Project (tenant id) that owns the object.",
                                   default=""),
    }

    def fq_name(self) -> list[str]:
        return [DOMAIN, self.properties[self.PROJECT] or "default-project", self.properties[self.NAME]]


def _with(extra: dict[str, attributes.Schema]) -> dict[str, attributes.Schema]:
    """The common ``name``/``fq_name`` attributes plus a type's own."""
    return {**ContrailResource.attributes_schema, **extra}


class VirtualNetwork(TenantResource):
    """``OS::Contrail::VirtualNetwork``: a tenant network (a ``network``)."""

    contrail_type = "virtual_network"
    DISPLAY_NAME, ROUTE_TARGETS = "display_name", "route_targets"
    properties_schema = {
        **TenantResource._tenant_properties,
        DISPLAY_NAME: properties.Schema(properties.Schema.STRING, "Name shown to the tenant.", default="",
                                        update_allowed=True),
        ROUTE_TARGETS: properties.Schema(properties.Schema.LIST, "Route targets, e.g. target:64512:1000.",
                                         default=[], update_allowed=True),
    }
    attributes_schema = _with({ROUTE_TARGETS: attributes.Schema("Route targets of the network.",
                                                                type=attributes.Schema.LIST)})

    def _resolve_attribute(self, name: str) -> Any:
        if name == self.ROUTE_TARGETS:
            return list(self.properties[self.ROUTE_TARGETS] or [])
        return super()._resolve_attribute(name)


def mac_address(resource_id: str) -> str:
    """A locally administered MAC derived from the object's id, as stable as the id."""
    octets = bytes.fromhex(resource_id.replace("-", ""))[:5]
    return ":".join(["02", *(f"{octet:02x}" for octet in octets)])


class VirtualMachineInterface(TenantResource):
    """``OS::Contrail::VirtualMachineInterface``: a tenant port on a virtual network (a ``port``)."""

    contrail_type = "virtual_machine_interface"
    VIRTUAL_NETWORK, MAC_ADDRESS, DEVICE_OWNER, ALLOWED_ADDRESS_PAIRS = (
        "virtual_network", "mac_address", "device_owner", "allowed_address_pairs")
    properties_schema = {
        **TenantResource._tenant_properties,
        # Contrail does not move an interface to another network: a new network replaces it.
        VIRTUAL_NETWORK: properties.Schema(properties.Schema.STRING, "uuid of the virtual network.",
                                           required=True),
        MAC_ADDRESS: properties.Schema(properties.Schema.STRING, "MAC address; empty: one is assigned.",
                                       default=""),
        DEVICE_OWNER: properties.Schema(properties.Schema.STRING, "What the port is for (Neutron's device_owner).",
                                        default="", update_allowed=True),
        ALLOWED_ADDRESS_PAIRS: properties.Schema(properties.Schema.LIST, "Extra addresses the port may use.",
                                                 default=[], update_allowed=True),
    }
    attributes_schema = _with({
        MAC_ADDRESS: attributes.Schema("MAC address of the interface.", type=attributes.Schema.STRING),
        ALLOWED_ADDRESS_PAIRS: attributes.Schema("Allowed address pairs.", type=attributes.Schema.LIST),
        VIRTUAL_NETWORK: attributes.Schema("uuid of the virtual network.", type=attributes.Schema.STRING),
    })

    def _resolve_attribute(self, name: str) -> Any:
        if name == self.MAC_ADDRESS:
            return self.properties[self.MAC_ADDRESS] or mac_address(self.resource_id)
        if name == self.ALLOWED_ADDRESS_PAIRS:
            return list(self.properties[self.ALLOWED_ADDRESS_PAIRS] or [])
        if name == self.VIRTUAL_NETWORK:
            return self.properties[self.VIRTUAL_NETWORK]
        return super()._resolve_attribute(name)


class InstanceIp(ContrailResource):
    """``OS::Contrail::InstanceIp``: one fixed address of a port; fq_name ``[<interface>-<address>]``."""

    contrail_type = "instance_ip"
    PROPERTIES = (VIRTUAL_MACHINE_INTERFACE, VIRTUAL_NETWORK, INSTANCE_IP_ADDRESS, SUBNET_ID) = (
        "virtual_machine_interface", "virtual_network", "instance_ip_address", "subnet_id")
    properties_schema = {
        VIRTUAL_MACHINE_INTERFACE: properties.Schema(properties.Schema.STRING, "uuid of the interface.",
                                                     required=True),
        VIRTUAL_NETWORK: properties.Schema(properties.Schema.STRING, "uuid of the virtual network.",
                                           required=True),
        INSTANCE_IP_ADDRESS: properties.Schema(properties.Schema.STRING, "The address; empty: one is assigned.",
                                               default=""),
        SUBNET_ID: properties.Schema(properties.Schema.STRING, "Subnet the address is taken from.", default=""),
    }
    attributes_schema = _with({INSTANCE_IP_ADDRESS: attributes.Schema("The address.",
                                                                      type=attributes.Schema.STRING)})

    def fq_name(self) -> list[str]:
        address = self.properties[self.INSTANCE_IP_ADDRESS] or self.properties[self.SUBNET_ID] or "auto"
        return [f"{self.properties[self.VIRTUAL_MACHINE_INTERFACE]}-{address}"]

    def _resolve_attribute(self, name: str) -> Any:
        if name == self.INSTANCE_IP_ADDRESS:
            return self.properties[self.INSTANCE_IP_ADDRESS]
        return super()._resolve_attribute(name)


class LogicalInterface(ContrailResource):
    """``OS::Contrail::LogicalInterface``: a VLAN unit of a physical interface (an ese_logical_port).

    fq_name ``[default-global-system-config, <physical interface>, <name>]``, like its interface's.
    """

    contrail_type = "logical_interface"
    PROPERTIES = (NAME, PHYSICAL_INTERFACE, VIRTUAL_MACHINE_INTERFACES, TYPE, VLAN) = (
        "name", "physical_interface", "virtual_machine_interfaces", "type", "vlan")
    properties_schema = {
        # name, interface and VLAN identify the unit on the switch: changing one replaces it
        NAME: properties.Schema(properties.Schema.STRING, "Unit name, e.g. xe-0/0/1.1003.", required=True),
        PHYSICAL_INTERFACE: properties.Schema(properties.Schema.STRING, "uuid of the physical interface.",
                                              required=True),
        VLAN: properties.Schema(properties.Schema.INTEGER, "VLAN id of the unit.", required=True,
                                constraints=[constraints.Range(0, 4094)]),
        VIRTUAL_MACHINE_INTERFACES: properties.Schema(properties.Schema.LIST,
                                                      "uuids of the tenant ports bridged onto the unit.",
                                                      default=[], update_allowed=True),
        TYPE: properties.Schema(properties.Schema.STRING, "L2 or L3.", default="L2", update_allowed=True,
                                constraints=[constraints.AllowedValues(["L2", "L3"])]),
    }

    def fq_name(self) -> list[str]:
        return [GLOBAL_CONFIG, self.properties[self.PHYSICAL_INTERFACE], self.properties[self.NAME]]


def resource_mapping() -> dict[str, type[resource.Resource]]:
    return {
        "OS::Contrail::PhysicalRouter": PhysicalRouter,
        "OS::Contrail::PhysicalInterface": PhysicalInterface,
        "OS::Contrail::ExistingResource": ExistingResource,
        "OS::Contrail::VirtualNetwork": VirtualNetwork,
        "OS::Contrail::VirtualMachineInterface": VirtualMachineInterface,
        "OS::Contrail::InstanceIp": InstanceIp,
        "OS::Contrail::LogicalInterface": LogicalInterface,
    }
