#!/usr/bin/env bash
# Create the venv as a ROS 2 prefix from PyPI wheels (Kilted by default, ROS_DISTRO=jazzy for
# the LTS in .venv-jazzy), install CALL's Python dependencies, repair the wheels' CMake exports,
# colcon-build the workspace, and, where ../shared/ros-tools exists, build the ROS 2 tools no
# registry carries (ros2 launch/topic/param, launch_testing, rqt) as an overlay and install the
# Debian packages rqt needs under Xvfb. Idempotent: a second run only rebuilds what changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
case "${ROS_DISTRO:-kilted}" in
  kilted|jazzy) ;;
  *) echo "[setup] ROS_DISTRO=$ROS_DISTRO: the pip setup builds kilted (default) or jazzy;" \
       "with a full ROS 2 install follow README's 'With a full ROS 2 install'" >&2; exit 2 ;;
esac
export CALL_SETUP_VENV=1
# shellcheck disable=SC1091
. scripts/distro.sh
venv="$call_venv"
python="${PYTHON:-python3}"

step() { printf '\n[setup] %s\n' "$*"; }
fail() { printf '\n[setup] FAILED: %s\n' "$*" >&2; exit 1; }

if [ ! -x "$venv/bin/python" ]; then
  step "creating $venv with $($python --version 2>&1) for ROS 2 $call_distro"
  "$python" -m venv "$venv" || fail "could not create a venv with $python (install python3-venv)"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"

wheels="$(mktemp)"
trap 'rm -f "$wheels"' EXIT
# Jazzy has no ament_cmake_ros_core (Kilted split it out of ament_cmake_ros); its
# ament_cmake_ros also finds the gtest/gmock CMake packages and domain_coordinator, and its
# rosidl_generator_py python_cmake_module
if [ "$call_distro" = jazzy ]; then
  sed -e 's/^ros-kilted-ament-cmake-ros-core$/ros-kilted-ament-cmake-ros/' scripts/ros-wheels.txt
  printf "%s\n" ros-kilted-ament-cmake-gmock ros-kilted-ament-cmake-gtest ros-kilted-domain-coordinator \
    ros-kilted-python-cmake-module
else
  cat scripts/ros-wheels.txt
fi | sed "s/ros-kilted-/ros-$call_distro-/" > "$wheels"
stamp="$venv/.call-requirements.sha256"
want="$(cat requirements.txt "$wheels" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  step "installing ROS 2 $call_distro wheels and Python dependencies (pip)"
  # --no-compile: byte-compiling every installed module (torch's thousands) is most of pip's
  # CPU time; Python compiles what is imported, once, on its first import (the check below)
  pip install --disable-pip-version-check --no-compile -q -r "$wheels" -r requirements.txt 2>&1 \
    | grep -v "^WARNING: Location" || true
  pip check >/dev/null 2>&1 || pip check | grep -v "^$" >&2 || true
  python -c "import rclpy, torch, libsumo, cv2" || fail "pip install left the venv incomplete (see above)"
  echo "$want" > "$stamp"
else
  step "dependencies up to date ($call_distro)"
fi

# The wheels' CMake exports hard-code the build machine's Python and NumPy include dirs.
py_inc="$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
np_inc="$(python -c 'import numpy; print(numpy.get_include())')"
broken="$(grep -rl '/opt/python/cp3' "$venv/share" --include='*.cmake' 2>/dev/null || true)"
if [ -n "$broken" ]; then
  step "repairing $(echo "$broken" | wc -l) CMake exports that point at /opt/python"
  echo "$broken" | xargs sed -i -E \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#${np_inc}#g" \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#${py_inc}#g"
fi

step "colcon build ($call_distro: ${call_install_base#"$root"/})"
bash "$root/scripts/colcon_build.sh" || fail "colcon build failed (${call_log_base#"$root"/}/latest_build/)"

bash "$root/scripts/setup_ros_tools.sh"
step "done: source scripts/env.sh to use the workspace (scripts/ros_tools.sh adds ros2 and rqt)"
