"""``python -m agentsim agent --connect ENDPOINT --name NAME``: one agent OS process."""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys

import trio

from agentsim.logs import configure_logging


def set_parent_death_signal() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (runner killed with SIGKILL)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def build_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--connect", required=True, help="broker endpoint, e.g. ipc:///tmp/x/bus or tcp://HOST:PORT"
    )
    parser.add_argument("--name", required=True, help="agent name (its socket identity)")
    parser.add_argument(
        "--run-id", default="", help="run id (learned from the runner when omitted)"
    )
    parser.add_argument(
        "--configure-timeout", type=float, default=120.0, help="seconds to wait for the runner"
    )
    return parser


def main(args: argparse.Namespace) -> int:
    from agentsim.agent.core import Agent
    from agentsim.bus.zmq_transport import DealerLink

    if os.environ.get("AGENTSIM_CHILD") == "1":
        set_parent_death_signal()
        # The runner owns Ctrl-C handling for the whole run; children ignore the terminal's.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(json=True, stream=sys.stderr)
    link = DealerLink(args.connect, args.name)

    async def _run() -> int:
        agent = Agent(
            link, args.name, run_id=args.run_id, configure_timeout_s=args.configure_timeout
        )
        try:
            return await agent.run()
        finally:
            link.close()

    code = trio.run(_run)
    sys.stdout.flush()
    # Engine worker threads may still be running an abandoned completion: don't wait for them.
    os._exit(code)
