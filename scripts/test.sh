#!/usr/bin/env bash
# Run every package's tests with colcon (real rclpy, Fast DDS, SUMO and torch) and print results,
# for the distribution ROS_DISTRO selects (kilted by default, jazzy; scripts/distro.sh), and the
# wall time of the run. Tests of ros2 launch / ros2 CLI / rqt use the ROS tools overlay that
# scripts/setup.sh built ($CALL_ROS_TOOLS); where it is absent they skip and print why.
set -eo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck disable=SC1091
. scripts/env.sh
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
started=$(date +%s)
rc=0
colcon --log-base "$call_log_base" test --build-base "$call_build_base" \
  --install-base "$call_install_base" --executor sequential \
  --event-handlers console_direct+ summary+ --pytest-args -p no:cacheprovider "$@" || rc=$?
colcon test-result --test-result-base "$call_build_base" --verbose || rc=$?
echo "[test] ROS 2 $call_distro: $(( $(date +%s) - started )) s wall, exit $rc"
exit $rc
