# Source me: activates the venv (a ROS 2 prefix) and the colcon workspace overlay.
# ROS_DISTRO=jazzy selects the Jazzy venv and build (scripts/setup.sh makes them); default Kilted.
# shellcheck disable=SC1091
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/distro.sh" || return 2
# shellcheck disable=SC1091
. "$call_venv/bin/activate"
export ROS_DISTRO="$call_distro"
export AMENT_PREFIX_PATH="${AMENT_PREFIX_PATH:+$AMENT_PREFIX_PATH:}$VIRTUAL_ENV"
export CMAKE_PREFIX_PATH="${CMAKE_PREFIX_PATH:+$CMAKE_PREFIX_PATH:}$VIRTUAL_ENV"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export COLCON_LOG_LEVEL="${COLCON_LOG_LEVEL:-error}"
# where tests find ros2/launch_test/rqt (built by setup.sh); the overlay itself is sourced only
# by scripts/ros_tools.sh, because pytest >= 9 cannot load launch_testing's pytest plugin
export CALL_ROS_TOOLS="$call_ros_tools"
if [ -f "$call_install_base/setup.bash" ]; then
  # shellcheck disable=SC1091
  . "$call_install_base/setup.bash"
fi
