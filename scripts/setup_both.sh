#!/usr/bin/env bash
# Part of `make test`: set up the Kilted and the Jazzy workspaces at the same time. Each
# scripts/setup.sh runs mostly one process at a time (pip, then CMake and colcon), so on a
# cold clone two of them side by side take about the time of the longer one, not the sum.
# Jazzy's lines carry a "[jazzy]" prefix; the exit status is non-zero if either set-up failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
( ROS_DISTRO=jazzy bash scripts/setup.sh 2>&1 | sed -u 's/^/[jazzy] /' ) &
jazzy=$!
ROS_DISTRO=kilted bash scripts/setup.sh
kilted_rc=$?
wait "$jazzy"
jazzy_rc=$?
if [ "$kilted_rc" -ne 0 ] || [ "$jazzy_rc" -ne 0 ]; then
  echo "[setup] FAILED: kilted exit $kilted_rc, jazzy exit $jazzy_rc (lines above)" >&2
  exit 1
fi
