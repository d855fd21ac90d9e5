#!/usr/bin/env bash
# colcon build of the workspace. The stand-in carla_msgs/derived_object_msgs packages are skipped
# when a real carla-ros-bridge install already provides them (full ROS 2 / Docker).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck disable=SC1091
. scripts/distro.sh
if [ -f "$call_venv/bin/activate" ]; then
  set +u  # colcon's setup scripts read unset variables
  # shellcheck disable=SC1091
  . scripts/env.sh
  set -u
fi
skip=()
for pkg in carla_msgs derived_object_msgs; do
  IFS=: read -r -a prefixes <<< "${AMENT_PREFIX_PATH:-}"
  for p in "${prefixes[@]}"; do
    case "$p" in "$call_install_base"*) continue ;; esac
    if [ -f "$p/share/$pkg/package.xml" ]; then skip+=("$pkg"); break; fi
  done
done
args=(--build-base "$call_build_base" --install-base "$call_install_base" --symlink-install --event-handlers console_cohesion- summary+ status-)
[ ${#skip[@]} -gt 0 ] && args+=(--packages-skip "${skip[@]}") && echo "[build] using installed ${skip[*]}"
exec colcon --log-base "$call_log_base" build "${args[@]}" "$@"
