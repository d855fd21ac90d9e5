# The two commands of the README. Both install what they need (scripts/setup.sh) first.
# `make test` runs the whole suite on ROS 2 Kilted (the default); `make test-jazzy` runs it on
# Jazzy (the LTS) in its own venv and build. Jazzy is not in `make test` yet. Its one clean-clone
# failure (test_fault_tolerance counting 93 of 94 relayed messages: the test summed per-step
# counts, and under load its probe misses the first few) is fixed.
.PHONY: demo test setup test-kilted test-jazzy

setup:
	ROS_DISTRO=kilted bash scripts/setup.sh

# make demo ARGS="--compare local" passes ARGS on to call_demo (scripts/demo.sh)
demo: setup
	ROS_DISTRO=kilted bash scripts/demo.sh $(ARGS)

test: test-kilted

test-kilted:
	ROS_DISTRO=kilted bash scripts/setup.sh
	ROS_DISTRO=kilted bash scripts/test.sh

test-jazzy:
	ROS_DISTRO=jazzy bash scripts/setup.sh
	ROS_DISTRO=jazzy bash scripts/test.sh
