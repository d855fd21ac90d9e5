# The two commands of the README. Both install what they need (scripts/setup.sh) first.
.PHONY: demo test setup

setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh

test: setup
	bash scripts/test.sh
