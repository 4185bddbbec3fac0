"""The Slack emulator on its own, for trying the bot by hand.

`python -m lab.slack_console --port N --bot-url http://127.0.0.1:3000/slack/events`
prints SLACK_API_URL for the bot and serves the control API under /_lab/.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Sequence

from lab.slack_driver import SlackDriver
from lab.slack_emulator import LAB_APP_TOKEN, LAB_BOT_TOKEN, SlackEmulator
from lab.slack_workspace import SlackWorkspace


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lab.slack_console", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--bot-url", help="the bot's Request URL, e.g. http://127.0.0.1:3000/slack/events"
    )
    parser.add_argument("--socket-mode", action="store_true", help="deliver through Socket Mode")
    parser.add_argument("--signing-secret", default=os.environ.get("SLACK_SIGNING_SECRET"))
    parser.add_argument("--bot-token", default=os.environ.get("SLACK_BOT_TOKEN", LAB_BOT_TOKEN))
    parser.add_argument("--app-token", default=os.environ.get("SLACK_APP_TOKEN", LAB_APP_TOKEN))
    parser.add_argument("--strict", action="store_true", help="unknown channel/user IDs fail")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    emu = SlackEmulator(
        bot_token=args.bot_token,
        app_token=args.app_token,
        workspace=SlackWorkspace(strict=args.strict),
        host=args.host,
        port=args.port,
    )
    await emu.start_async()
    if args.socket_mode:
        emu.driver = SlackDriver(emu, socket_mode=True)
    elif args.bot_url:
        if not args.signing_secret:
            raise SystemExit("--bot-url needs the signing secret (SLACK_SIGNING_SECRET)")
        emu.driver = SlackDriver(emu, signing_secret=args.signing_secret, bot_url=args.bot_url)
    print(f"SLACK_API_URL={emu.api_url}", flush=True)
    print(f"control API: {emu.base_url}/_lab/ (calls, messages, command, click, message, faults)")
    print(f"web page: {emu.web.url()} (the incident channel; clicks need --bot-url)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await emu.stop_async()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the emulator in the foreground until SIGINT/SIGTERM."""
    asyncio.run(_serve(_arguments(argv)))


if __name__ == "__main__":
    main()
