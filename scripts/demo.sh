#!/usr/bin/env bash
# The bot's main job on embedded defaults: embedded Redis, lab DCs, local Slack emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/ad1411 demo "$@"
