"""``python -m agentsim agent --connect ENDPOINT --name NAME``: one agent OS process."""

from __future__ import annotations

import argparse
import os
import signal
import sys

import trio

from agentsim.logs import configure_logging


def build_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--connect", required=True, help="broker endpoint, e.g. ipc:///tmp/x/bus or tcp://HOST:PORT"
    )
    parser.add_argument("--name", required=True, help="agent name (its socket identity)")
    parser.add_argument(
        "--run-id", default="", help="run id (learned from the runner when omitted)"
    )
    parser.add_argument("--key", help="this agent's secret key file (NAME.key_secret) for CURVE")
    parser.add_argument("--server-key", help="the runner's public key file (NAME.key) for CURVE")
    parser.add_argument(
        "--configure-timeout", type=float, default=120.0, help="seconds to wait for the runner"
    )
    return parser


def main(args: argparse.Namespace) -> int:
    from agentsim.agent.core import Agent
    from agentsim.bus.zmq_transport import DealerLink

    parent = 0
    if os.environ.get("AGENTSIM_CHILD") == "1":
        # The runner owns Ctrl-C handling for the whole run; children ignore the terminal's.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        parent = os.getppid()
    configure_logging(json=True, stream=sys.stderr)
    from agentsim.bus.auth import (
        KeyFileError,
        curve_from_env,
        key_name,
        load_public,
        load_secret,
    )

    curve = curve_from_env()
    if args.key or args.server_key:
        if not (args.key and args.server_key):
            print("agentsim agent: error: --key and --server-key go together", file=sys.stderr)
            return 2
        try:
            public, secret = load_secret(args.key)
            curve = (public, secret, load_public(args.server_key))
            bound = key_name(args.key)
        except KeyFileError as e:
            print(f"agentsim agent: error: {e}", file=sys.stderr)
            return 2
        if bound != args.name:  # the runner would refuse every frame: say so now
            print(
                f"agentsim agent: error: --key {args.key} is bound to agent {bound!r}, "
                f"not --name {args.name!r}",
                file=sys.stderr,
            )
            return 2
    link = DealerLink(args.connect, args.name, curve=curve)

    async def _run() -> int:
        agent = Agent(
            link,
            args.name,
            run_id=args.run_id,
            configure_timeout_s=args.configure_timeout,
            parent_pid=parent,
        )
        try:
            return await agent.run()
        finally:
            link.close()

    code = trio.run(_run)
    if code == 6:  # the runner process is gone: its socket folder is ours to clean up
        from agentsim.bus.ipcdir import release_if_orphaned

        release_if_orphaned(args.connect)
    sys.stdout.flush()
    # Hand what is still queued (the reports sent on Shutdown) to the broker before leaving:
    # os._exit would drop it. Bounded by the socket's linger.
    link.ctx.destroy(linger=500)
    # Engine worker threads may still be running an abandoned completion: don't wait for them.
    os._exit(code)
