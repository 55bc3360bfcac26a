#!/usr/bin/env bash
# The main job: installs dependencies, builds, and runs attnlab's main work.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default -j "$(nproc)"
./build/default/attnlab demo --steps 2000
