#!/usr/bin/env bash
# The README's main job: a multi-vehicle CALL scenario on the embedded simulator with the
# shipped small checkpoint. Extra arguments go to call_demo (see `call_demo --help`).
set -eo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck disable=SC1091
. scripts/env.sh
exec python -m call_bringup.demo "$@"
