"""A tiny world model (random weights: the replica is about numerics) driving a sender."""
from call_world_model.config import load_config
from call_world_model.world_model import WorldModel
import numpy as np
import torch

torch.set_num_threads(1)


def tiny_model(seed: int = 0, **overrides) -> WorldModel:
    """Build the tiny preset with random weights, in eval mode."""
    torch.manual_seed(seed)
    return WorldModel(load_config('tiny', overrides or None)).eval()


class Sender:
    """Plays a world-model node: observe random BEVs, emit (z_t, a_{t-1}, h_t) per step."""

    def __init__(self, model: WorldModel, seed: int = 0) -> None:
        self.model = model
        self.rng = np.random.default_rng(seed)
        self.gen = torch.Generator().manual_seed(seed)
        self.state = None
        self.prev_action = 0

    def step(self):
        cfg = self.model.cfg
        bev = torch.from_numpy(self.rng.integers(
            0, 2, (1, cfg.bev_channels, cfg.bev_size, cfg.bev_size), dtype=np.uint8))
        first = self.state is None
        with torch.no_grad():
            post, _ = self.model.observe_step(self.state, torch.tensor([self.prev_action]), bev,
                                              torch.tensor([first]))
        self.state = post
        z = post['stoch'][0].argmax(-1).numpy().astype(np.uint8)
        h = post['deter'][0].numpy().copy()
        action = self.prev_action
        self.prev_action = int(self.rng.integers(0, cfg.num_actions))
        return z, action, h
