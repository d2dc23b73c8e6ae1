"""Secrets at rest (galaxy/coord/_sealed.py): what a sealed value hides, and who can open it."""

from __future__ import annotations

import pytest

from galaxy.coord import StateKey, is_sealed, open_sealed
from galaxy.errors import PermissionDenied

SECRET = "rq}ZkIbAAs2(wk0Ob5ruLm[+&ecy]Fjo7L1WHQ(9"  # a CURVE secret key's shape


def test_a_sealed_value_hides_the_secret_and_opens_only_under_its_name_and_key() -> None:
    key = StateKey.generate()
    sealed = key.seal(SECRET, "worker_secret")
    assert is_sealed(sealed) and SECRET not in sealed
    assert key.seal(SECRET, "worker_secret") == sealed   # deterministic: templates still compare equal
    assert key.open(sealed, "worker_secret") == SECRET
    assert key.seal(sealed, "worker_secret") == sealed   # never sealed twice
    with pytest.raises(PermissionDenied) as other_name:   # a sealed pod seed passed off as a worker key
        key.open(key.seal(SECRET, "pod_seed"), "worker_secret")
    assert other_name.value.field == "state_key"
    with pytest.raises(PermissionDenied):
        StateKey.generate().open(sealed, "worker_secret")
    with pytest.raises(PermissionDenied):
        key.open(sealed[:-4] + "AAAA", "worker_secret")   # altered


def test_plain_values_from_before_sealing_read_as_they_are_and_a_keyless_daemon_says_why() -> None:
    assert open_sealed(None, SECRET, "worker_secret") == SECRET
    assert StateKey.generate().open(SECRET, "worker_secret") == SECRET
    with pytest.raises(PermissionDenied, match="no state_key") as err:
        open_sealed(None, StateKey.generate().seal(SECRET, "x"), "x")
    assert err.value.field == "state_key"


def test_resman_opens_sealed_env_for_a_create_request_only() -> None:
    from types import SimpleNamespace

    from galaxy.resman.agentio import opened_template

    key = StateKey.generate()
    template = {"cpu": 0.1, "env": {"GALAXY_WORKER_KEY": key.seal(SECRET, "env:GALAXY_WORKER_KEY"),
                                    "GALAXY_CLUSTER": "c1"}}
    body = opened_template(SimpleNamespace(state_key=key), template)
    assert body["env"] == {"GALAXY_WORKER_KEY": SECRET, "GALAXY_CLUSTER": "c1"}
    assert is_sealed(template["env"]["GALAXY_WORKER_KEY"])           # the group's own template stays sealed
    plain = {"env": {"GALAXY_WORKER_KEY": SECRET}}
    assert opened_template(SimpleNamespace(state_key=None), plain) is plain  # a group from before sealing
    with pytest.raises(PermissionDenied, match="no state_key"):
        opened_template(SimpleNamespace(state_key=None), template)
