"""The Python SDK of Galaxy: what the ``galaxy`` command is built on, for programs.

``Client`` finds the AppMaster and ResMan through ZooKeeper, authenticates with the user's CURVE
key, follows leader changes, and offers every operation of the CLI (jobs, pods, hosts, and users,
grants, quotas, usage, pools and pool policies) plus ``resolve`` and ``watch`` on naming. Configuration comes from
``~/.galaxy/config`` and ``GALAXY_*`` variables (``config``); every error is a ``galaxy.errors``
type, re-exported in ``galaxy.sdk.errors``. See docs/sdk.md.
"""

from __future__ import annotations

from galaxy.sdk import errors
from galaxy.sdk._tenancy import expand_permissions, parse_since, policy_body, quota_change
from galaxy.sdk._watch import WatchEvent
from galaxy.sdk.client import Client, spec_dict
from galaxy.sdk.config import ClientConfig, config_path, load_config, write_config
from galaxy.sdk.errors import JobFailed, NotConfigured, OutcomeUnknown

__all__ = [
    "Client", "ClientConfig", "JobFailed", "NotConfigured", "OutcomeUnknown", "WatchEvent", "config_path",
    "errors", "expand_permissions", "load_config", "parse_since", "policy_body", "quota_change", "spec_dict",
    "write_config",
]
