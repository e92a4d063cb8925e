"""Values captured when the engine tests start, before fixtures change the environment."""

from __future__ import annotations

import os

#: the cache a developer/CI run shares (the real model is downloaded once there).
SHARED_CACHE = os.environ.get("AGENTSIM_CACHE")
