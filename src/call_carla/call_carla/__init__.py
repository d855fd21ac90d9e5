"""CARLA path for CALL: the same nodes drive CARLA Town04 through carla-ros-bridge."""
