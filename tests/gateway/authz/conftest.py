"""The shipped policies' authorizer, shared by the decision tests."""

from __future__ import annotations

import pytest
from role_fixtures import POLICIES

from gateway.authz.decide import Authorizer
from gateway.authz.policies import load_policies


@pytest.fixture(scope="module")
def authorizer() -> Authorizer:
    return Authorizer(load_policies(POLICIES), admin_groups=("admins",))
