"""
How fast this machine is right now: one number every bench prints beside its figures.

Why: shared VMs drift by tens of percent between runs (and machines differ), so a figure
means little without the speed it was measured at. The reference is the median wall time of
one world-model observe step of the ``small`` preset (random weights: the cost does not
depend on them) on one torch thread; lower means a faster machine. Quote it with the figure.
"""
import statistics
import time


def reference_ms(steps: int = 200, preset: str = 'small', checkpoint_path: str = '') -> float:
    """Median ms of one observe step (1 thread) of ``preset`` or of a checkpoint's model."""
    import numpy as np
    import torch
    torch.set_num_threads(1)
    if checkpoint_path:
        from call_world_model import checkpoint as wm_checkpoint
        model = wm_checkpoint.load(checkpoint_path).world_model.eval()
    else:
        from call_world_model.config import load_config
        from call_world_model.world_model import WorldModel
        torch.manual_seed(0)
        model = WorldModel(load_config(preset)).eval()
    cfg = model.cfg
    rng = np.random.default_rng(0)
    bev = torch.from_numpy((rng.random((cfg.bev_size, cfg.bev_size, cfg.bev_channels)) > 0.9)
                           .astype(np.uint8)).permute(2, 0, 1)[None]
    state, times = None, []
    with torch.inference_mode():
        for step in range(steps + 20):
            start = time.perf_counter()
            state, _ = model.observe_step(state, torch.tensor([0]), bev,
                                          torch.tensor([state is None]), None, None)
            if step >= 20:
                times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def print_reference(when: str = 'before the runs', **kwargs) -> float:
    """Measure and print the machine reference; returns it in ms."""
    value = reference_ms(**kwargs)
    print(f'machine reference: one observe step took {value:.2f} ms {when} '
          '(small preset, 1 thread; lower = faster machine)', flush=True)
    return value
