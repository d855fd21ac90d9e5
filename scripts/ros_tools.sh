# Source me for the ROS 2 command-line and GUI tools in the pip environment: the workspace
# (scripts/env.sh) plus the ros-tools overlay that scripts/setup.sh built from ../shared/ros-tools
# (ros2 launch|topic|node|param|run, launch_test, rqt). A full ROS 2 install has them already.
# shellcheck disable=SC1091
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/env.sh" || return 2
if [ -f "$CALL_ROS_TOOLS/setup.bash" ]; then
  # shellcheck disable=SC1091
  . "$CALL_ROS_TOOLS/setup.bash"
  # the workspace again on top, so its packages win over the overlay's
  # shellcheck disable=SC1091
  . "$call_install_base/setup.bash"
else
  echo "ros_tools.sh: no ROS tools overlay at $CALL_ROS_TOOLS (scripts/setup.sh builds it where" \
    "../shared/ros-tools exists)" >&2
fi
