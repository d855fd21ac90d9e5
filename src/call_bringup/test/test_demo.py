"""
`make demo` end to end: `python -m call_bringup.demo` for 30 ticks, as the Makefile runs it.

The demo's default graph (4 CALL vehicles, the shipped checkpoint) drives 30 simulation
steps; the test checks what a user gets: exit status 0, the
printed summary, summary.json, a GIF with a frame every `gif_every` steps and a nodes.log
without a traceback or a fatal message.
"""
import json
import os
import re
import subprocess
import sys

from call_bringup.graph import bringup_config
import imageio.v2 as imageio

TICKS = 30
WAIT_S = 900.0        # bound of the whole run (its processes import torch on shared cores)


def test_demo_runs_30_ticks_and_writes_summary_gif_and_a_clean_log(tmp_path):
    run_dir = tmp_path / 'run'
    result = subprocess.run(
        [sys.executable, '-m', 'call_bringup.demo', '--ticks', str(TICKS), '--out',
         str(run_dir)], capture_output=True, text=True, timeout=WAIT_S, cwd=str(tmp_path),
        env=dict(os.environ))
    output = result.stdout + result.stderr
    log_text = (run_dir / 'nodes.log').read_text(encoding='utf-8') \
        if (run_dir / 'nodes.log').exists() else ''
    assert result.returncode == 0, output[-3000:] + log_text[-3000:]
    assert '=== CALL demo summary ===' in result.stdout

    summary = json.loads((run_dir / 'summary.json').read_text(encoding='utf-8'))
    vehicles = summary['vehicles']
    assert vehicles == 4 and summary['ended'] == 'done'
    assert summary['steps'] >= TICKS
    assert summary['vehicle_steps'] == summary['steps'] * vehicles
    assert vehicles <= summary['routes'] == summary['routes_ended'] + summary['unfinished']
    assert 0 <= summary['reached'] <= summary['routes_ended']
    assert summary['success_rate'] == (summary['reached'] / summary['routes_ended']
                                       if summary['routes_ended'] else None)
    assert 0.0 <= summary['collision_rate'] <= 1.0
    assert 0.0 <= summary['override_rate'] <= 1.0        # every planner reported its counters
    # every vehicle's CommStats of the measured steps, the last ones included, came in
    assert summary['mean_bytes_per_step'] is not None, result.stdout[-3000:]
    assert summary['mean_bytes_per_step'] >= 0.0
    assert os.path.isfile(summary['checkpoint'])
    assert f"steps: {summary['steps']}" in result.stdout

    frames = imageio.mimread(str(run_dir / 'demo.gif'), memtest=False)
    every = bringup_config()['demo']['gif_every']
    # a frame every `gif_every` shown steps (the last few steps are printed without one)
    assert 1 <= len(frames) <= summary['steps'] // every
    height, width = frames[0].shape[:2]
    assert height > 0 and width > 0
    assert all(frame.shape == frames[0].shape for frame in frames)
    assert len({frame.tobytes() for frame in frames}) > 1      # the scene moves

    # every vehicle's nodes were started (one process each, or in a container)
    started = re.findall(r'\[call_run\] started (\S+) \(pid', log_text)
    for role in (f'hero{i}' for i in range(vehicles)):
        assert any(role in label.replace('+', '/').split('/') for label in started), started
    assert 'Traceback' not in log_text, log_text[-3000:]
    assert 'FATAL' not in log_text, log_text[-3000:]
    assert 'Traceback' not in output, output[-3000:]
