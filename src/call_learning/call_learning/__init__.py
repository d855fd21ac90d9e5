"""CALL learning: fleet experience collection, replay, training and evaluation (ROS-free)."""
