#!/usr/bin/env bash
# Part of scripts/setup.sh: build ROS 2's CLI and GUI tools (ros2 launch|topic|node|param|run,
# launch_testing, rqt_plot, rqt_topic) from ../shared/ros-tools as an overlay on the venv, and
# install the Debian packages rqt needs under Xvfb. A full ROS 2 install has all of this; where
# ../shared/ros-tools is absent the tools' tests skip and say so. A stamp keeps re-runs fast.
set -euo pipefail
# shellcheck disable=SC1091
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/distro.sh"
step() { printf '\n[setup] %s\n' "$*"; }

if [ ! -f "$call_shared_tools/build.sh" ]; then
  step "ROS tools overlay skipped: $call_shared_tools/build.sh not found (the launch, ros2 CLI" \
    "and rqt tests will skip; a full ROS 2 install provides the tools)"
  exit 0
fi
tools_src="$(cd "$call_shared_tools" && pwd)"
stamp="$call_ros_tools/.call-tools.sha256"
want="$(cat "$tools_src/build.sh" "$tools_src/SOURCES.txt" | sha256sum | cut -d' ' -f1)-$(readlink -f "$call_venv/bin/python")"
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && [ -x "$call_ros_tools/bin/ros2" ]; then
  step "ROS tools overlay up to date (${call_ros_tools#"$call_root"/})"
else
  step "building the ROS tools overlay from $tools_src into ${call_ros_tools#"$call_root"/}"
  (
    set +u
    # shellcheck disable=SC1091
    . "$call_root/scripts/env.sh"
    set -u
    bash "$tools_src/build.sh" "$call_ros_tools"
  ) || { echo "[setup] FAILED: ROS tools overlay build" >&2; exit 1; }
  echo "$want" > "$stamp"
fi

# rqt under a virtual display: Xvfb, xdotool (window size), imagemagick (screenshots) and the
# xcb libraries PyQt5's platform plugin loads
debs="xvfb xdotool imagemagick libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
  libxcb-render-util0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-shape0 libxcb-cursor0"
# one apt-get at a time: make test sets up both distributions at once (setup_both.sh)
if command -v flock >/dev/null; then
  exec 9>"${TMPDIR:-/tmp}/call-setup-apt.lock"
  flock 9
fi
missing=""
for deb in $debs; do
  dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "ok installed" || missing="$missing $deb"
done
if [ -z "$missing" ]; then
  step "Debian packages for rqt under Xvfb present"
elif ! command -v apt-get >/dev/null; then
  step "rqt tests will skip: no apt-get to install$missing"
else
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo -n"
  step "installing Debian packages for rqt under Xvfb:$missing"
  if ! { $sudo apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1 ||
         { $sudo apt-get update -q >/dev/null 2>&1 &&
           $sudo apt-get install -y -q --no-install-recommends $missing >/dev/null; }; }; then
    step "rqt tests will skip: could not apt-get install$missing (needs root or sudo)"
  fi
fi
