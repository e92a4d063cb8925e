"""``python -m agentsim SCENARIO.toml`` (same as ``agentsim run SCENARIO.toml``)."""

import sys

from agentsim.cli import main

if __name__ == "__main__":
    sys.exit(main())
