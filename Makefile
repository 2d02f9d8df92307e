# Quick start (README): `make demo` runs the tracker demo, `make test` runs the tests. Both first run
# tools/ros_env/bootstrap.sh, which creates .venv/ + .ros/ on a machine without ROS (seconds when nothing changed).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
BOOTSTRAP := tools/ros_env/bootstrap.sh
ENV := set +u; source .ros/env.sh
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: all bootstrap test demo clean-env

all: test

bootstrap:
	@$(BOOTSTRAP)

test: bootstrap
	@$(ENV); pytest -ra -p no:cacheprovider test/ $(PYTEST_ARGS)

# PYTHONSAFEPATH: do not put the current directory on sys.path, so `siam_tracker_ros` is the colcon-installed
# package (sources + generated srv/) rather than the source folder, which has no srv/.
demo: bootstrap
	@$(ENV); PYTHONSAFEPATH=1 python -m siam_tracker_ros.cli demo $(DEMO_ARGS)

# Remove the bootstrap's environment (the next bootstrap rebuilds it from nothing).
clean-env:
	rm -rf .venv .ros
