from __future__ import annotations

import sys
from pathlib import Path

# The suite runs with --import-mode=importlib: make the helper modules next to us importable.
sys.path.insert(0, str(Path(__file__).parent))
