"""``agentsim keys NAME...``: CURVE key pairs for runs across hosts (one identity each)."""

from __future__ import annotations

import argparse
from pathlib import Path

from agentsim.bus.auth import create_keys
from agentsim.cli.errors import EXIT_OK, UsageError


def add_arguments(keys: argparse.ArgumentParser) -> None:
    keys.add_argument("names", nargs="+", help="one key pair per name (e.g. runner alice bob)")
    keys.add_argument(
        "--dir", default="keys", help="folder for NAME.key / NAME.key_secret (default keys/)"
    )


def main(args: argparse.Namespace) -> int:
    for name in args.names:
        if not name.replace("-", "").replace("_", "").isalnum():
            raise UsageError(f"keys: name must be letters, digits, - and _, got {name!r}")
        public, secret = create_keys(Path(args.dir), name)
        print(f"{name}: public {public}  secret {secret} (keep it private)")
    return EXIT_OK
