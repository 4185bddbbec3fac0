#!/usr/bin/env bash
# A real Event 1411 incident on one machine, shown on a local Slack page (see docs/demo.md).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/ad1411 demo --prepare "$@" | sed 's/^demo: /setup: /'
exec .venv/bin/ad1411 demo "$@"
