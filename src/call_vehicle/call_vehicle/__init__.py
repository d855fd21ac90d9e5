"""CALL vehicle types: discrete actions, kinematic bicycle, control mapping, intention rule."""
