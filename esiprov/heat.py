"""The Heat client the workers use: stack create/update/delete and status with outputs.

A thin layer over python-heatclient that gives the workers what they decide on:
a small ``Stack`` value, and three error classes that say whether to retry
(``HeatUnavailable``) or fail the job (``HeatRejected``). Every request has a
timeout, so a hung Heat costs a retry, never a stuck worker. Error messages
carry Heat's own reason, and never the token or password.
"""
from __future__ import annotations

import re
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

from heatclient import client as heat_client
from heatclient import exc as heat_exc
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint
from keystoneauth1.identity import v3

from esiprov.documents import HeatOutput
from esiprov.errors import Permanent, Transient
from esiprov.settings import ConfigError, Settings

#: seconds per HTTP request to Heat (and Keystone)
HTTP_TIMEOUT = 30.0
#: 4xx answers that clear up by themselves: 409 is "an action is in progress" on update/delete
TRANSIENT_STATUS = frozenset({408, 409, 429})
#: characters of an error body kept in a message (a proxy's HTML page can be long)
MAX_REASON = 1000
#: Heat's own rule for stack names, plus an optional ``/<stack id>``: any other character
#: (``/``, ``?``, ``#``, ``%``) would reshape the request path and could reach another stack
STACK_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,254}(/[0-9a-f-]{36})?")
#: a Keystone project id (32 hex digits in practice): it becomes a path segment of every request
TENANT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class HeatError(Exception):
    """A Heat call failed; the message says which call and why, without secrets."""


class HeatUnavailable(HeatError, Transient):
    """Transient (connection error, timeout, HTTP 5xx, action in progress): retry later."""


class HeatRejected(HeatError, Permanent):
    """Permanent (bad template, bad parameters, update of a missing stack): retrying won't help."""


@dataclass(frozen=True)
class Stack:
    """A stack as Heat shows it; ``outputs`` verbatim, ``output_error`` entries included."""

    name: str
    id: str
    status: str
    status_reason: str
    outputs: list[HeatOutput]
    #: when Heat last changed the stack ("" before any update)
    updated_time: str = ""

    @classmethod
    def from_heat(cls, body: Mapping[str, Any]) -> Stack:
        return cls(name=body["stack_name"], id=body["id"], status=body["stack_status"],
                   status_reason=body.get("stack_status_reason") or "",
                   outputs=list(body.get("outputs") or []), updated_time=body.get("updated_time") or "")

    @property
    def revision(self) -> list[str]:
        """What changes when Heat takes up an operation: status and update time."""
        return [self.status, self.updated_time]

    @property
    def action(self) -> str:
        """CREATE, UPDATE, DELETE, ROLLBACK, ... (Heat's actions contain no underscore)."""
        return self.status.partition("_")[0]

    @property
    def in_progress(self) -> bool:
        return self.status.endswith("_IN_PROGRESS")

    @property
    def failed(self) -> bool:
        return self.status.endswith("_FAILED")

    @property
    def complete(self) -> bool:
        return self.status.endswith("_COMPLETE")


#: the status Heat shows, by id, for a deleted stack
DELETED = "DELETE_COMPLETE"
#: stack ids remembered per process: (endpoint, tenant, stack name) -> id
_stack_ids: dict[tuple[str, str, str], str] = {}
MAX_STACK_IDS = 100_000
#: clients kept per process: (settings, tenant, thread) -> client
_clients: OrderedDict[tuple[int, str, int], HeatClient] = OrderedDict()
_clients_lock = threading.Lock()
MAX_CLIENTS = 256


def client_for(settings: Settings, tenant_id: str) -> HeatClient:
    """This thread's client of ``tenant_id``, made once: its HTTP connection (and its Keystone
    token) serve every later task instead of a new one per task. One per thread, since a
    requests session is not meant to be shared between threads."""
    key = (id(settings), tenant_id, threading.get_ident())
    with _clients_lock:
        client = _clients.get(key)
        if client is not None:
            _clients.move_to_end(key)
            return client
    client = HeatClient(settings, tenant_id)  # holds ``settings``: its id is not reused while cached
    with _clients_lock:
        _clients[key] = client
        if len(_clients) > MAX_CLIENTS:
            _clients.popitem(last=False)
    return client


class HeatClient:
    """Stacks of one tenant.

    With ``settings.heat_url`` the client talks to that URL (``{tenant_id}``
    replaced) with ``settings.heat_token``; otherwise it authenticates with the
    OS_* Keystone settings, scoped to the tenant as project.
    """

    def __init__(self, settings: Settings, tenant_id: str) -> None:
        if not tenant_id:
            raise HeatRejected("no tenant_id: every Heat stack belongs to a tenant")
        if not TENANT_ID.fullmatch(tenant_id):
            raise HeatRejected(f"tenant_id {tenant_id!r} is not a project id (1-64 letters, digits, _ or -)")
        keystone = settings.keystone
        self._redact = settings.redact  # every configured secret, not only Heat's
        #: where stack ids are valid: the endpoint and the tenant
        self._scope = (settings.heat_url or (keystone.auth_url if keystone else ""), tenant_id)
        if settings.heat_url:
            # A session keeps its HTTP connection; heatclient's own HTTPClient opens one per request.
            auth = token_endpoint.Token(settings.heat_url.replace("{tenant_id}", tenant_id), settings.heat_token)
            self._heat = heat_client.Client("1", session=ks_session.Session(auth=auth, timeout=HTTP_TIMEOUT))
        elif keystone:
            login = v3.Password(auth_url=keystone.auth_url, username=keystone.username,
                                password=keystone.password, user_domain_name=keystone.user_domain_name,
                                project_id=tenant_id)
            region = {"region_name": keystone.region_name} if keystone.region_name else {}
            self._heat = heat_client.Client("1", session=ks_session.Session(auth=login, timeout=HTTP_TIMEOUT),
                                            service_type="orchestration", **region)
        else:
            raise ConfigError("no Heat endpoint: set ESIPROV_HEAT_URL (and ESIPROV_HEAT_TOKEN) "
                              "or the OS_* Keystone variables")

    def get(self, name: str) -> Stack | None:
        """The stack with its outputs, or None when there is none (never made, or deleted).

        ``name`` may also be ``name/id``. The id of a stack seen before is remembered (per
        process) and used the same way, which saves Heat's 302 lookup on every later check.
        """
        known = _stack_ids.get((*self._scope, name))
        if known is not None:
            stack = self._show(name, f"{name}/{known}")
            if stack is not None and stack.status != DELETED:
                return stack
            _stack_ids.pop((*self._scope, name), None)  # deleted: the name may have a new stack by now
        stack = self._show(name, name)
        if stack is not None and "/" not in name:
            self._remember(name, stack.id)
        return stack

    def _show(self, name: str, path: str) -> Stack | None:
        found = None
        with self._call(f"show stack {name}", ok=404):
            found = Stack.from_heat(self._heat.stacks.get(_checked(path)).to_dict())
        return found

    def statuses(self, names: Sequence[str]) -> dict[str, Stack]:
        """The stacks of these names that exist, by name, without their outputs: one list request
        (Heat's stack list filtered by name) for all of them."""
        found: dict[str, Stack] = {}
        with self._call(f"list {len(names)} stacks"):
            for body in self._heat.stacks.list(filters={"name": [_checked(name) for name in names]}):
                stack = Stack.from_heat(body.to_dict())
                found[stack.name] = stack
        return found

    def _remember(self, name: str, stack_id: str) -> None:
        if len(_stack_ids) >= MAX_STACK_IDS:
            _stack_ids.clear()  # a cache, not a record: losing it costs one lookup per stack
        _stack_ids[(*self._scope, name)] = stack_id

    def create(self, name: str, template: str, parameters: Mapping[str, Any],
               timeout_mins: int | None) -> bool:
        """Start creating; False when a stack of that name exists (409): create is idempotent.

        ``get`` tells what is there (possibly a stack still being deleted). No
        rollback: a failed stack stays, with its reason, for the job to report.
        """
        created = None
        with self._call(f"create stack {name}", ok=409):
            created = self._heat.stacks.create(stack_name=_checked(name), template=template,
                                               parameters=dict(parameters), disable_rollback=True,
                                               **_timeout(timeout_mins))
        if created is None:
            return False
        self._remember(name, created["stack"]["id"])
        return True

    def update(self, name: str, template: str, parameters: Mapping[str, Any],
               timeout_mins: int | None) -> None:
        """Start a full (PUT) update with the new template and parameters."""
        with self._call(f"update stack {name}"):
            self._heat.stacks.update(_checked(name), template=template, parameters=dict(parameters),
                                     disable_rollback=True, **_timeout(timeout_mins))

    def delete(self, name: str) -> None:
        """Start deleting; a stack that is already gone (404) is fine."""
        with self._call(f"delete stack {name}", ok=404):
            self._heat.stacks.delete(_checked(name))

    @contextmanager
    def _call(self, what: str, ok: int | None = None) -> Iterator[None]:
        """Swallow the expected HTTP status ``ok``; turn every other failure into a HeatError."""
        try:
            yield
        except heat_exc.HTTPException as exc:
            if exc.code != ok:
                raise self._error(exc.code, f"{what}: {_heat_reason(exc)}") from None
        except ks_exc.HttpError as exc:  # from Keystone, on the session path
            raise self._error(exc.http_status, f"{what}: Keystone: {exc}") from None
        except (heat_exc.CommunicationError, heat_exc.InvalidEndpoint, ks_exc.ConnectionError) as exc:
            raise HeatUnavailable(self._redact(f"{what}: {exc}")) from None
        except ks_exc.ClientException as exc:  # no endpoint in the catalog, bad auth settings
            raise HeatRejected(self._redact(f"{what}: {exc}")) from None

    def _error(self, status: int, message: str) -> HeatError:
        transient = status >= 500 or status in TRANSIENT_STATUS
        return (HeatUnavailable if transient else HeatRejected)(self._redact(message))



def _checked(name: str) -> str:
    """``name`` if Heat would accept it as a stack name; HeatRejected otherwise."""
    if not STACK_NAME.fullmatch(name):
        raise HeatRejected(f"{name!r} is not a stack name (a letter, then letters, digits, _ . or -)")
    return name


def _heat_reason(exc: heat_exc.HTTPException) -> str:
    """``HTTP 400 StackValidationFailed: <Heat's message>``; a non-Heat body is shown shortened."""
    error = exc.error.get("error", {})
    reason = error.get("message") or exc.error.get("explanation") or exc.message or ""
    if isinstance(reason, bytes):
        reason = reason.decode(errors="replace")
    label = " ".join(filter(None, (f"HTTP {exc.code}", error.get("type"))))
    return f"{label}: {reason[:MAX_REASON]}"


def _timeout(timeout_mins: int | None) -> dict[str, int]:
    """Heat's own default applies when the template sets none."""
    return {} if timeout_mins is None else {"timeout_mins": timeout_mins}
