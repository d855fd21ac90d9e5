"""
Probe of a container's critical path: put this directory first on PYTHONPATH, set CALL_CRIT=DIR.

Why: a lockstep tick ends when the slower container's last command is out, so what matters for
the tick is the container's CPU before that command, not its CPU per tick. Each container
process records, per step, its executor thread's CPU clock (`time.thread_time`: all callbacks
run on that thread) at the step's first perception odometry callback and at each planner
`publish_control`, and writes DIR/crit-<pid>.json when it exits
(`call_bringup.cpu_profile.finish`, which `call_bringup.compose` calls before `os._exit`).
Thread CPU, so a loaded machine inflates both ends alike; `bench/critical_path_report.py`
reads the files. Patches the classes once their modules are imported; nothing else changes.
Usage: `PYTHONPATH=bench/critical_path:$PYTHONPATH CALL_CRIT=/tmp/crit python
bench/bench_bringup.py --vehicles 16 --modes grouped --ticks 150`.
"""
import importlib.abc
import importlib.util
import json
import os
import sys
import time

OUT = os.environ.get('CALL_CRIT')
if OUT:
    odo, ctl = {}, {}
    TARGETS = ('call_planner.planner_node', 'call_perception.perception_node',
               'call_bringup.cpu_profile')

    def patch(name, module):
        """Wrap the probed functions of ``module`` once it has been imported."""
        if name == 'call_planner.planner_node':
            cls = module.PlannerNode
            orig = cls.publish_control

            def publish_control(self, command, stamp, _orig=orig):
                _orig(self, command, stamp)
                ctl[stamp.sec * 10**9 + stamp.nanosec] = time.thread_time()
            cls.publish_control = publish_control
        elif name == 'call_perception.perception_node':
            cls = module.PerceptionNode
            orig = cls._take_odometry

            def _take_odometry(self, msg, _orig=orig):
                odo.setdefault(msg.stamp_ns, time.thread_time())
                _orig(self, msg)
            cls._take_odometry = _take_odometry
        else:
            orig = module.finish

            def finish(sampler, label, _orig=orig):
                os.makedirs(OUT, exist_ok=True)
                with open(f'{OUT}/crit-{os.getpid()}.json', 'w') as f:
                    json.dump({'odo': odo, 'ctl': ctl}, f)
                _orig(sampler, label)
            module.finish = finish

    class Finder(importlib.abc.MetaPathFinder):
        """Patch the probed modules right after they are executed."""

        def find_spec(self, name, path, target=None):
            """Return the module's usual spec, its loader patching it after executing it."""
            if name not in TARGETS:
                return None
            sys.meta_path.remove(self)
            try:
                spec = importlib.util.find_spec(name)
            finally:
                sys.meta_path.insert(0, self)
            orig_exec = spec.loader.exec_module

            def exec_module(module):
                orig_exec(module)
                patch(name, module)
            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, Finder())
