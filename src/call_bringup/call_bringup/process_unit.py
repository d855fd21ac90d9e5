"""
One supervised OS process of a run: what the runner starts, and what tools add to a run.

Its own module so that the tools that describe a unit (the Foxglove live view) and the runner
that supervises it both sit above it, without importing each other.
"""
import collections
from dataclasses import dataclass, field
import subprocess
import threading
from typing import Optional


@dataclass
class ProcessUnit:
    """One supervised OS process: a node, or a container of vehicles' nodes."""

    label: str
    command: list[str]
    vehicles: tuple[str, ...] = ()      # whose nodes run in it (none: the simulator, tools)
    finishes_run: bool = False          # a clean exit of this unit ends the run (simulator)
    process: Optional[subprocess.Popen] = None
    last_lines: collections.deque = field(default_factory=lambda: collections.deque(maxlen=20))
    reader: Optional[threading.Thread] = None
    reported: bool = False
