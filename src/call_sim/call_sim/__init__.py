"""CALL embedded multi-vehicle simulator (SUMO) speaking the CARLA ROS bridge contract."""
