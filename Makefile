# The two commands of the README. Both install what they need (scripts/setup.sh) first.
# `make test` runs the whole suite on ROS 2 Kilted, then on Jazzy (the LTS), each in its own
# venv and build; it fails if either fails.
.PHONY: demo test setup test-kilted test-jazzy

setup:
	ROS_DISTRO=kilted bash scripts/setup.sh

# make demo ARGS="--compare local" passes ARGS on to call_demo (scripts/demo.sh)
demo: setup
	ROS_DISTRO=kilted bash scripts/demo.sh $(ARGS)

test:
	status=0; \
	$(MAKE) test-kilted || status=1; \
	$(MAKE) test-jazzy || status=1; \
	exit $$status

test-kilted:
	ROS_DISTRO=kilted bash scripts/setup.sh
	ROS_DISTRO=kilted bash scripts/test.sh

test-jazzy:
	ROS_DISTRO=jazzy bash scripts/setup.sh
	ROS_DISTRO=jazzy bash scripts/test.sh
