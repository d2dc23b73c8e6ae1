"""`python -m galaxy.supervisor …` (see galaxy.supervisor._cli)."""

from __future__ import annotations

import sys

from galaxy.supervisor._cli import main

sys.exit(main())
