#!/usr/bin/env bash
# Source ROS 2, carla-ros-bridge and the CALL workspace, then run the command.
set -e
# shellcheck disable=SC1090
source "/opt/ros/${ROS_DISTRO:-humble}/setup.bash"
# shellcheck disable=SC1091
source /opt/carla_ws/install/setup.bash
# shellcheck disable=SC1091
source /opt/call_ws/install/setup.bash
exec "$@"
