"""CALL bringup: node graph, runner, demo, inspection, recording and fault injection."""
