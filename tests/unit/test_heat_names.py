"""HeatClient keeps every request inside its tenant's stack of the job's own name."""
from __future__ import annotations

import pytest

from esiprov.heat import STACK_NAME, TENANT_ID, HeatClient, HeatRejected
from esiprov.settings import Settings

SETTINGS = Settings(heat_url="http://127.0.0.1:9/v1/{tenant_id}", heat_token="tok-5ecret")


@pytest.mark.parametrize("tenant", ["a/../b", "..", "a?x=1", "a#b", "a%2Fb", "a b", "x" * 65])
def test_a_tenant_id_that_could_reshape_the_url_is_rejected(tenant: str) -> None:
    with pytest.raises(HeatRejected, match="is not a project id"):
        HeatClient(SETTINGS, tenant)


@pytest.mark.parametrize("name", ["ese_device_a/../other", "ese_device_x?y", "ese_device_%2F", "_x", "1x",
                                  "ese_device_a/b"])
def test_a_stack_name_heat_would_not_accept_is_rejected_before_any_request(name: str) -> None:
    client = HeatClient(SETTINGS, "0b576f6f4cbf414f829cd12f008bf08f")
    for call in (lambda: client.get(name), lambda: client.delete(name),
                 lambda: client.create(name, "", {}, None), lambda: client.update(name, "", {}, None)):
        with pytest.raises(HeatRejected, match="is not a stack name"):
            call()


def test_the_seeds_names_and_a_name_with_its_stack_id_are_accepted() -> None:
    assert TENANT_ID.fullmatch("0b576f6f4cbf414f829cd12f008bf08f")
    assert STACK_NAME.fullmatch("ese_physical_port_5b2dee2e-7420-4cd4-b270-5081eb9eb371")
    assert STACK_NAME.fullmatch("ese_device_x/5b2dee2e-7420-4cd4-b270-5081eb9eb371")
