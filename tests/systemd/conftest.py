"""The systemd suite runs only inside `make test-systemd` (scripts/test-systemd.sh), which boots systemd as
PID 1 and sets GALAXY_SYSTEMD_TEST=1. Anywhere else its files are not collected at all (not skipped):
they would start and stop units of the host's own systemd."""

from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("GALAXY_SYSTEMD_TEST") == "1" else ["test_*.py"]
