"""esiprov.heat without a Heat: status helpers, error classification, redaction.

heatclient's stack manager is replaced by a stub that raises what heatclient
raises, so every failure class can be produced on demand.
"""
from __future__ import annotations

import json
from typing import Any

import pytest
from heatclient import exc as heat_exc
from keystoneauth1 import exceptions as ks_exc

from esiprov.devenv.process import free_port
from esiprov.heat import HeatClient, HeatError, HeatRejected, HeatUnavailable, Stack
from esiprov.settings import ConfigError, KeystoneAuth, Settings

TOKEN = "tok-5ecret-0123"
SETTINGS = Settings(heat_url="http://127.0.0.1:9/v1/{tenant_id}", heat_token=TOKEN)


def heat_body(status: int, kind: str, message: str) -> bytes:
    """An error body as Heat's faultwrap writes it."""
    return json.dumps({"code": status, "title": "x", "explanation": "The server could not comply.",
                       "error": {"type": kind, "message": message, "traceback": None}}).encode()


class RaisingStacks:
    """Stands in for heatclient's StackManager: every call raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, method: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> None:
            raise self.error
        return call


def client_raising(error: Exception) -> HeatClient:
    client = HeatClient(SETTINGS, "tenant-a")
    client._heat.stacks = RaisingStacks(error)  # type: ignore[assignment]
    return client


@pytest.mark.parametrize("status, in_progress, failed, complete, action", [
    ("CREATE_IN_PROGRESS", True, False, False, "CREATE"),
    ("UPDATE_FAILED", False, True, False, "UPDATE"),
    ("DELETE_COMPLETE", False, False, True, "DELETE"),
    ("ROLLBACK_COMPLETE", False, False, True, "ROLLBACK"),
])
def test_a_stack_status_splits_into_action_and_state(
        status: str, in_progress: bool, failed: bool, complete: bool, action: str) -> None:
    stack = Stack.from_heat({"stack_name": "s", "id": "i", "stack_status": status,
                             "stack_status_reason": None})
    assert (stack.in_progress, stack.failed, stack.complete, stack.action) == (in_progress, failed, complete, action)
    assert (stack.status_reason, stack.outputs) == ("", [])


@pytest.mark.parametrize("error, expected", [
    (heat_exc.HTTPBadRequest(heat_body(400, "StackValidationFailed", "Property error: name"), 400), HeatRejected),
    (heat_exc.HTTPNotFound(heat_body(404, "EntityNotFound", "The Stack (s) could not be found."), 404), HeatRejected),
    (heat_exc.HTTPConflict(heat_body(409, "ActionInProgress", "Stack s already has an action"), 409),
     HeatUnavailable),
    (heat_exc.HTTPInternalServerError(heat_body(500, "OperationalError", "database is locked"), 500),
     HeatUnavailable),
    (heat_exc.HTTPServiceUnavailable(b"<html>" + b"x" * 5000 + b"</html>", 503), HeatUnavailable),
    (heat_exc.CommunicationError("Error communicating with http://127.0.0.1:9 refused"), HeatUnavailable),
    (ks_exc.ConnectFailure("Unable to establish connection to keystone"), HeatUnavailable),
    (ks_exc.Unauthorized("The request you have made requires authentication."), HeatRejected),
    (ks_exc.EndpointNotFound("no orchestration endpoint in the catalog"), HeatRejected),
], ids=["400", "404-on-update", "409", "500", "503-html", "connection", "keystone-connection",
        "keystone-401", "no-endpoint"])
def test_heat_failures_are_classed_as_transient_or_permanent(error: Exception, expected: type[HeatError]) -> None:
    with pytest.raises(HeatError) as raised:
        client_raising(error).update("s", "template", {}, None)
    assert type(raised.value) is expected
    assert str(raised.value).startswith("update stack s: ")
    assert len(str(raised.value)) < 1200


def test_the_message_carries_heats_error_type_and_reason() -> None:
    error = heat_exc.HTTPBadRequest(heat_body(400, "StackValidationFailed", "Property error: name"), 400)
    with pytest.raises(HeatRejected, match=r"^create stack s: HTTP 400 StackValidationFailed: Property error: name$"):
        client_raising(error).create("s", "template", {}, None)


def test_a_heat_error_without_message_falls_back_to_the_explanation() -> None:
    body = json.dumps({"code": 400, "explanation": "The server could not comply.",
                       "error": {"type": "AttributeError", "traceback": None}}).encode()
    with pytest.raises(HeatRejected, match=r"HTTP 400 AttributeError: The server could not comply\.$"):
        client_raising(heat_exc.HTTPBadRequest(body, 400)).get("s")


def test_the_token_never_appears_in_an_error_message() -> None:
    error = heat_exc.HTTPUnauthorized(f"Authentication failed: token {TOKEN} expired")
    with pytest.raises(HeatRejected) as raised:
        client_raising(error).get("s")
    assert TOKEN not in str(raised.value) and "***" in str(raised.value)


@pytest.mark.parametrize("call, status", [("get", 404), ("delete", 404), ("create", 409)])
def test_the_expected_answers_are_not_errors(call: str, status: int) -> None:
    error = heat_exc.from_response(type("Response", (), {"status_code": status, "content": b"{}"})())
    client = client_raising(error)
    args: tuple[Any, ...] = ("s", "template", {}, None) if call == "create" else ("s",)
    assert getattr(client, call)(*args) is (False if call == "create" else None)  # create: "it existed"


def test_a_client_needs_a_heat_url_or_keystone() -> None:
    with pytest.raises(ConfigError, match="ESIPROV_HEAT_URL"):
        HeatClient(Settings(), "tenant-a")


def test_a_client_needs_a_tenant() -> None:
    with pytest.raises(HeatRejected, match="tenant"):
        HeatClient(SETTINGS, "")


def test_an_unreachable_keystone_is_transient_and_the_password_stays_secret() -> None:
    keystone = KeystoneAuth(auth_url=f"http://127.0.0.1:{free_port()}/v3", username="esi",
                            password="pw-5ecret-987", project_name="admin")
    with pytest.raises(HeatUnavailable, match="show stack s: ") as raised:
        HeatClient(Settings(keystone=keystone), "tenant-a").get("s")
    assert "pw-5ecret-987" not in str(raised.value)
