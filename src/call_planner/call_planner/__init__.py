"""CALL planner: world-model look-ahead (paper eq. 3), safety fallback, CARLA control."""
