#!/usr/bin/env bash
# Run every package's tests with colcon (real rclpy, Fast DDS, SUMO and torch) and print results.
set -eo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck disable=SC1091
. scripts/env.sh
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
rc=0
colcon test --executor sequential --event-handlers console_direct+ summary+ \
  --pytest-args -p no:cacheprovider "$@" || rc=$?
colcon test-result --verbose || rc=$?
exit $rc
