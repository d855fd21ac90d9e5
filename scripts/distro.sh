# Sourced by the other scripts: which ROS 2 distribution's wheels this shell uses, and where
# its venv, colcon bases and ROS tools overlay live. ROS_DISTRO=kilted (the default) or jazzy
# (the LTS): in the pip environment each has a venv and build of its own (.venv-jazzy,
# build-jazzy, install-jazzy), so both can be tested. A full ROS 2 install (ROS_DISTRO set by
# /opt/ros/*/setup.bash, no .venv-jazzy) keeps the usual build/ and install/.
call_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
call_distro="${ROS_DISTRO:-kilted}"
call_suffix=""
if [ "$call_distro" = jazzy ] && { [ -d "$call_root/.venv-jazzy" ] || [ -n "${CALL_SETUP_VENV:-}" ]; }; then
  call_suffix="-jazzy"
fi
call_venv="$call_root/.venv$call_suffix"
call_build_base="$call_root/build$call_suffix"
call_install_base="$call_root/install$call_suffix"
call_log_base="$call_root/log$call_suffix"
call_ros_tools="$call_root/.ros-tools/$call_distro"   # ros2 launch/topic/param, launch_testing, rqt
call_shared_tools="$call_root/../shared/ros-tools"    # their sources (build.sh), where present
