# Source me: activates .venv (a ROS 2 prefix) and the colcon workspace overlay.
_call_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
. "$_call_root/.venv/bin/activate"
export AMENT_PREFIX_PATH="${AMENT_PREFIX_PATH:+$AMENT_PREFIX_PATH:}$VIRTUAL_ENV"
export CMAKE_PREFIX_PATH="${CMAKE_PREFIX_PATH:+$CMAKE_PREFIX_PATH:}$VIRTUAL_ENV"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export COLCON_LOG_LEVEL="${COLCON_LOG_LEVEL:-error}"
if [ -f "$_call_root/install/setup.bash" ]; then
  # shellcheck disable=SC1091
  . "$_call_root/install/setup.bash"
fi
unset _call_root
