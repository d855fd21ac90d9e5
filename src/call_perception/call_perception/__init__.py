"""CALL perception: the ego-centric semantic BEV the world model observes."""
