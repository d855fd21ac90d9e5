"""Experiments: the CALL paper tables and figures regenerated on the embedded simulator."""
