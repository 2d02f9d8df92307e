#!/usr/bin/env bash
# One-command ROS 2 (Kilted) environment for machines WITHOUT a ROS install (this dev box, CI, a laptop).
#
#   tools/ros_env/bootstrap.sh            # create/refresh .venv/ and .ros/, then: source .ros/env.sh
#   tools/ros_env/bootstrap.sh --force    # redo every step
#
# Steps (each skipped when its inputs did not change; stamps in .ros/stamps/ hold input hashes):
#   1 tools     python3.11, cmake, a C/C++ compiler
#   2 venv      .venv/ (python3.11 -m venv)
#   3 packages  pip install -r tools/ros_env/requirements.txt, then fix the ROS wheels' quirks
#   4 vision_msgs  colcon build of tools/ros_env/vision_msgs (only if the environment has no vision_msgs)
#   5 ros2 cli  the ROS 2 launch system and command line (`ros2 launch`, `ros2 lifecycle`, ...) for the launch tests:
#               pip install --no-deps of the wheels in ../shared/ros2 (or $SIAM_ROS2_DIR) into .ros/ros2cli and a
#               colcon build of its composition_interfaces; skipped (the launch tests then skip) without that folder
#   6 package   colcon build of this package (siam_tracker_ros: srv types + Python + launch/config)
#   7 env file  .ros/env.sh (venv, AMENT_PREFIX_PATH, the colcon install, .ros/ros2cli, LOCALHOST discovery, Fast DDS)
#
# On a robot with a real ROS install, use rosdep + colcon instead (README, "Robot workflow").
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/tools/ros_env"
VENV="$ROOT/.venv"
RDIR="$ROOT/.ros"
STAMPS="$RDIR/stamps"
LOGS="$RDIR/log"
WS="$RDIR/ws"
INSTALL="$RDIR/install"
NSTEPS=7
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

mkdir -p "$STAMPS" "$LOGS" "$WS/src"

STEP_NO=0
STEP_NAME=""
STEP_LOG=""
T0=$SECONDS

say() { echo "[bootstrap] $*"; }

step() {  # step <name> <log file name>
  STEP_NO=$((STEP_NO + 1))
  STEP_NAME="$1"
  STEP_LOG="$LOGS/$2"
  : >"$STEP_LOG"
}

fail() {  # fail <reason>
  say "step $STEP_NO/$NSTEPS ($STEP_NAME) failed: $1" >&2
  if [[ -s "$STEP_LOG" ]]; then
    say "last lines of $STEP_LOG:" >&2
    tail -n 40 "$STEP_LOG" | sed 's/^/    /' >&2
  fi
  exit 1
}

trap 'fail "command failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR

run() {  # run <command...>: output to the step log; a non-zero exit fails the step
  local rc=0
  "$@" >>"$STEP_LOG" 2>&1 || rc=$?
  [[ $rc == 0 ]] || fail "'$*' exited with $rc"
}

hash_files() {  # hash_files <path...>: one hash over file names and contents (dirs recursed, caches skipped)
  (
    cd "$ROOT"
    local existing=() p
    for p in "$@"; do [[ -e "$p" ]] && existing+=("$p"); done
    find "${existing[@]}" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 2>/dev/null | LC_ALL=C sort -z |
      xargs -0 -r sha256sum
  ) | sha256sum | cut -d' ' -f1
}

up_to_date() {  # up_to_date <stamp> <hash>
  [[ $FORCE == 0 && -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]
}

stamp() { echo "$2" >"$STAMPS/$1"; }

# ---------------------------------------------------------------------------------------------------------
step "tools" "1-tools.log"
PYTHON="${PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
  # Never pick the interpreter of .venv itself (the env file may be sourced): drop it from PATH.
  SEARCH_PATH="$(echo "$PATH" | tr ':' '\n' | grep -v -x -F "$VENV/bin" | paste -sd: -)"
  for cand in python3.11 python3; do
    if p="$(PATH="$SEARCH_PATH" command -v "$cand")" &&
      "$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      PYTHON="$p"
      break
    fi
  done
fi
if [[ -n "$PYTHON" ]]; then
  # the real base interpreter (through pyenv shims and virtual environments)
  PYTHON="$("$PYTHON" -c 'import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))')"
  [[ "$PYTHON" != "$VENV"/* ]] || fail "PYTHON must not be the interpreter of $VENV"
fi
[[ -n "$PYTHON" ]] || fail "no python3.11 found (the ROS 2 Kilted wheels are cp311); set PYTHON=/path/to/python3.11"
"$PYTHON" -c 'import venv, ensurepip' >>"$STEP_LOG" 2>&1 || fail "$PYTHON lacks venv/ensurepip (apt-get install python3-venv)"
"$PYTHON" -c 'import sysconfig, os, sys; h = sysconfig.get_paths()["include"]; sys.exit(not os.path.exists(os.path.join(h, "Python.h")))' ||
  fail "Python.h missing for $PYTHON (install the python3.11 development headers)"
for tool in cmake make cc c++; do
  command -v "$tool" >/dev/null || fail "'$tool' not found (apt-get install cmake make g++)"
done
say "step 1/$NSTEPS tools: $PYTHON, $(cmake --version | head -n1)"

# ---------------------------------------------------------------------------------------------------------
step "venv" "2-venv.log"
PYVER="$("$PYTHON" -c 'import sys; print(sys.version)' | head -n1)"
if [[ -x "$VENV/bin/python" ]] && up_to_date venv "$PYTHON $PYVER"; then
  say "step 2/$NSTEPS venv: up to date"
else
  rm -rf "$VENV"
  rm -f "$STAMPS"/*
  run "$PYTHON" -m venv "$VENV"
  stamp venv "$PYTHON $PYVER"
  say "step 2/$NSTEPS venv: created $VENV"
fi
VPY="$VENV/bin/python"
# The ros-wheels-bootstrapper .pth re-executes every python start to set LD_LIBRARY_PATH; do it once here.
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
SITE="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
ros_ld_path() {
  local p="$VENV/lib" d
  for d in "$SITE"/ros_*.libs; do [[ -d "$d" ]] && p="$p:$d"; done
  echo "$p"
}
export VIRTUAL_ENV="$VENV"
export PATH="$VENV/bin:$PATH"
BASE_LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}"
export LD_LIBRARY_PATH="$(ros_ld_path)${BASE_LD_LIBRARY_PATH:+:$BASE_LD_LIBRARY_PATH}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

# ---------------------------------------------------------------------------------------------------------
step "python packages" "3-pip.log"
REQ_HASH="$(hash_files tools/ros_env/requirements.txt tools/ros_env/fix_wheels.py)"
if up_to_date pip "$REQ_HASH"; then
  say "step 3/$NSTEPS python packages: up to date"
else
  say "step 3/$NSTEPS python packages: pip install -r tools/ros_env/requirements.txt (first time: a few minutes)"
  run "$VPY" -m pip install -r "$HERE/requirements.txt"
  # ros-rosidl-parser also pulls the old `lark-parser`, which ships the same `lark` module: keep lark 1.x.
  if ! "$VPY" -c 'import lark, sys; sys.exit(not lark.__version__.startswith("1."))' >>"$STEP_LOG" 2>&1; then
    run "$VPY" -m pip install --force-reinstall --no-deps "$(grep -E '^lark==' "$HERE/requirements.txt")"
  fi
  export LD_LIBRARY_PATH="$(ros_ld_path)${BASE_LD_LIBRARY_PATH:+:$BASE_LD_LIBRARY_PATH}"
  # The wheels hard-code the build container's /opt/python/cp311-cp311 include paths in their CMake exports.
  run "$VPY" "$HERE/fix_wheels.py" "$VENV"
  run "$VPY" -c 'import rclpy, rosidl_parser, catkin_pkg, em, cv2, torch, numpy, yaml'
  rm -f "$STAMPS/vision_msgs" "$STAMPS/package"  # rebuild against the new environment
  stamp pip "$REQ_HASH"
  say "step 3/$NSTEPS python packages: installed"
fi

# Install layout of .ros/ (bump when the way it is built changes: an old build dir cannot be reused then).
LAYOUT="merged+symlink-v1"
if [[ "$(cat "$RDIR/layout" 2>/dev/null)" != "$LAYOUT" ]]; then
  rm -rf "$RDIR/build" "$INSTALL" "$STAMPS/vision_msgs" "$STAMPS/package"
  echo "$LAYOUT" >"$RDIR/layout"
fi

export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export MAKEFLAGS="-j$(nproc)"

colcon_build() {  # colcon_build <package> [colcon build options]
  local pkg="$1"
  shift
  run colcon --log-base "$LOGS/colcon" build "$@" \
    --base-paths "$WS/src" \
    --build-base "$RDIR/build" --install-base "$INSTALL" --merge-install \
    --packages-select "$pkg" --event-handlers console_direct+ \
    --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VPY" -DCMAKE_BUILD_TYPE=Release
}

# ---------------------------------------------------------------------------------------------------------
step "build vision_msgs" "4-vision_msgs.log"
# Is vision_msgs provided by the environment itself (a real ROS install sourced before running this)?
external_vm=""
IFS=: read -r -a _prefixes <<<"${AMENT_PREFIX_PATH}"
for p in "${_prefixes[@]}"; do
  [[ -n "$p" && "$p" != "$INSTALL" && -f "$p/share/ament_index/resource_index/packages/vision_msgs" ]] && external_vm="$p"
done
VM_HASH="$(hash_files tools/ros_env/vision_msgs)"
if [[ -n "$external_vm" ]]; then
  rm -f "$WS/src/vision_msgs"
  say "step 4/$NSTEPS vision_msgs: provided by $external_vm, not built"
elif up_to_date vision_msgs "$VM_HASH" && [[ -f "$INSTALL/share/vision_msgs/package.xml" ]]; then
  say "step 4/$NSTEPS vision_msgs: up to date"
else
  say "step 4/$NSTEPS vision_msgs: colcon build (about a minute)"
  ln -sfn "$HERE/vision_msgs" "$WS/src/vision_msgs"
  rm -f "$STAMPS/package"
  colcon_build vision_msgs
  stamp vision_msgs "$VM_HASH"
  say "step 4/$NSTEPS vision_msgs: built"
fi

# ---------------------------------------------------------------------------------------------------------
step "ROS 2 command line" "5-ros2cli.log"
# launch, launch_ros, ros2cli and its verbs are pure Python but not on PyPI: ../shared/ros2 holds them as wheels (with
# the source of composition_interfaces, which launch_ros imports). They go into .ros/ros2cli, this checkout's own
# folder (the venv may be shared by several checkouts), which .ros/env.sh puts on PYTHONPATH and PATH.
ROS2_SHARED="${SIAM_ROS2_DIR-$ROOT/../shared/ros2}"
ROS2_PREFIX="$RDIR/ros2cli"
external_ros2=""
if p="$(command -v ros2)" && [[ "$p" != "$ROS2_PREFIX"/* ]] &&
  (cd "$RDIR" && python -c 'import launch_ros.actions') >>"$STEP_LOG" 2>&1; then
  external_ros2="$p"
fi
if [[ -n "$external_ros2" ]]; then
  rm -rf "$ROS2_PREFIX" "$WS/src/composition_interfaces"
  rm -f "$STAMPS/ros2cli"
  say "step 5/$NSTEPS ros2 command line: provided by $external_ros2, not installed"
elif [[ -z "$ROS2_SHARED" || ! -d "$ROS2_SHARED/wheels" || ! -d "$ROS2_SHARED/src/composition_interfaces" ]]; then
  rm -rf "$ROS2_PREFIX" "$WS/src/composition_interfaces"
  rm -f "$STAMPS/ros2cli"
  say "step 5/$NSTEPS ros2 command line: no wheels/ and src/ in '${ROS2_SHARED}' (../shared/ros2 or \$SIAM_ROS2_DIR):" \
    "not installed, the launch tests will skip"
else
  ROS2_SHARED="$(cd "$ROS2_SHARED" && pwd)"
  ROS2_HASH="$(echo "$ROS2_SHARED $(hash_files "$ROS2_SHARED/wheels" "$ROS2_SHARED/src/composition_interfaces")" |
    sha256sum | cut -d' ' -f1)"
  if up_to_date ros2cli "$ROS2_HASH" && [[ -x "$ROS2_PREFIX/bin/ros2" ]] &&
    [[ -f "$INSTALL/share/composition_interfaces/package.xml" ]]; then
    say "step 5/$NSTEPS ros2 command line: up to date"
  else
    say "step 5/$NSTEPS ros2 command line: wheels from $ROS2_SHARED, colcon build of composition_interfaces"
    rm -rf "$ROS2_PREFIX"
    # --no-deps: their other imports (yaml, lark, catkin_pkg, packaging, argcomplete, numpy) are in the venv already
    run "$VPY" -m pip install --no-deps --no-index --target "$ROS2_PREFIX" "$ROS2_SHARED"/wheels/*.whl
    ln -sfn "$ROS2_SHARED/src/composition_interfaces" "$WS/src/composition_interfaces"
    colcon_build composition_interfaces
    stamp ros2cli "$ROS2_HASH"
    say "step 5/$NSTEPS ros2 command line: installed ($ROS2_PREFIX/bin/ros2)"
  fi
fi

# ---------------------------------------------------------------------------------------------------------
step "build siam_tracker_ros" "6-package.log"
ln -sfn "$ROOT" "$WS/src/siam_tracker_ros"
PKG_INPUTS=(package.xml CMakeLists.txt msg srv scripts launch config siam_tracker_ros)
[[ -d "$ROOT/weights" ]] && PKG_INPUTS+=(weights)
PKG_HASH="$(hash_files "${PKG_INPUTS[@]}")"
if up_to_date package "$PKG_HASH" && [[ -f "$INSTALL/share/siam_tracker_ros/package.xml" ]]; then
  say "step 6/$NSTEPS siam_tracker_ros: up to date"
else
  say "step 6/$NSTEPS siam_tracker_ros: colcon build"
  # --symlink-install: the installed .py/launch/config files are symlinks to the sources, so an edit shows at
  # once and Path(__file__).resolve() inside the package points into the repository (weights/, ../shared/).
  colcon_build siam_tracker_ros --symlink-install
  stamp package "$PKG_HASH"
  say "step 6/$NSTEPS siam_tracker_ros: built"
fi

# ---------------------------------------------------------------------------------------------------------
step "env file" "7-env.log"
ENV_FILE="$RDIR/env.sh"
cat >"$ENV_FILE.tmp" <<EOF
# Generated by tools/ros_env/bootstrap.sh -- do not edit; re-run the bootstrap instead.
# Usage (bash/zsh):  source .ros/env.sh
# Python venv with the ROS 2 Kilted wheels
. "$VENV/bin/activate"
# the wheels' shared libraries (what ros_wheels_bootstrapper would set by re-executing every python)
export LD_LIBRARY_PATH="$(ros_ld_path)\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
# the venv is the underlay ROS prefix (no local_setup files of its own)
case ":\${AMENT_PREFIX_PATH:-}:" in *":$VENV:"*) ;; *) export AMENT_PREFIX_PATH="$VENV\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}" ;; esac
case ":\${CMAKE_PREFIX_PATH:-}:" in *":$VENV:"*) ;; *) export CMAKE_PREFIX_PATH="$VENV\${CMAKE_PREFIX_PATH:+:\$CMAKE_PREFIX_PATH}" ;; esac
# the colcon install of vision_msgs and siam_tracker_ros (overlay)
COLCON_CURRENT_PREFIX="$INSTALL" . "$INSTALL/setup.sh"
unset COLCON_CURRENT_PREFIX
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
# DDS traffic stays on this machine
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export SIAM_TRACKER_ROS_INSTALL="$INSTALL"
EOF
if [[ -x "$ROS2_PREFIX/bin/ros2" ]]; then
  cat >>"$ENV_FILE.tmp" <<EOF
# the ROS 2 launch system and command line from ../shared/ros2 (ros2 launch, ros2 lifecycle, launch_testing)
case ":\${PYTHONPATH:-}:" in *":$ROS2_PREFIX:"*) ;; *) export PYTHONPATH="$ROS2_PREFIX\${PYTHONPATH:+:\$PYTHONPATH}" ;; esac
case ":\$PATH:" in *":$ROS2_PREFIX/bin:"*) ;; *) export PATH="$ROS2_PREFIX/bin:\$PATH" ;; esac
EOF
fi
mv "$ENV_FILE.tmp" "$ENV_FILE"
# shellcheck disable=SC1090
# (run outside the source tree: from the repo root, python would import the source package, which lacks srv/)
( set +u; cd "$RDIR" && . "$ENV_FILE" && python -c 'import rclpy, vision_msgs.msg, siam_tracker_ros.srv' ) >>"$STEP_LOG" 2>&1 ||
  fail "sourcing $ENV_FILE does not give rclpy and siam_tracker_ros.srv"
if [[ -x "$ROS2_PREFIX/bin/ros2" ]]; then
  ( set +u; cd "$RDIR" && . "$ENV_FILE" && python -c 'import launch_ros.actions, launch_testing, ros2cli' &&
    ros2 pkg prefix siam_tracker_ros ) >>"$STEP_LOG" 2>&1 ||
    fail "sourcing $ENV_FILE does not give launch_ros, launch_testing and a ros2 command that finds siam_tracker_ros"
fi
say "step 7/$NSTEPS env file: $ENV_FILE"
say "done in $((SECONDS - T0)) s -- now: source .ros/env.sh"
