# The two commands of the README. Both install what they need (scripts/setup.sh) first.
.PHONY: demo test setup

setup:
	bash scripts/setup.sh

# make demo ARGS="--compare local" passes ARGS on to call_demo (scripts/demo.sh)
demo: setup
	bash scripts/demo.sh $(ARGS)

test: setup
	bash scripts/test.sh
