# The two commands of the README. Both install what they need (scripts/setup.sh) first.
# `make test` sets up both distributions at once, then runs the whole suite on ROS 2 Kilted (the
# default), then on Jazzy (the LTS) in its own venv and build; `make test-kilted` /
# `make test-jazzy` run one of them.
.PHONY: demo test setup test-kilted test-jazzy

setup:
	ROS_DISTRO=kilted bash scripts/setup.sh

# make demo ARGS="--compare local" passes ARGS on to call_demo (scripts/demo.sh)
demo: setup
	ROS_DISTRO=kilted bash scripts/demo.sh $(ARGS)

test:
	bash scripts/setup_both.sh
	ROS_DISTRO=kilted bash scripts/test.sh
	ROS_DISTRO=jazzy bash scripts/test.sh

test-kilted:
	ROS_DISTRO=kilted bash scripts/setup.sh
	ROS_DISTRO=kilted bash scripts/test.sh

test-jazzy:
	ROS_DISTRO=jazzy bash scripts/setup.sh
	ROS_DISTRO=jazzy bash scripts/test.sh
