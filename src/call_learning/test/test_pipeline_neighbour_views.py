"""
The updated BEV of the vehicle core (paper Fig. 4c) with a real trained decoder.

A car hides behind a truck in the ego's lane; a neighbour two lanes over sees it. Only that
neighbour's latent, decoded by the shared decoder inside ``VehiclePipeline.observe``, can put
the car into the ego's BEV.
"""
from dataclasses import replace
from pathlib import Path

from call_common.param_files import read_node_defaults
from call_learning.pipeline import PipelineConfig, VehiclePipeline
from call_perception.bev_raster import BevRasterizer, CHANNEL_INDEX
from call_perception.neighbour_views import VIEW_CHANNELS
from call_perception.perception_stage import Box
from call_sim.types import AgentObservation, Lane, VehicleState
from call_vehicle.actions import ActionSet
from call_vehicle.driver import Driver
from call_world_model.checkpoint import load
import cv2
import numpy as np
import pytest
import torch

CHECKPOINT = (Path(__file__).resolve().parents[2] / 'call_world_model' / 'checkpoints'
              / 'wm_small64g8.pt')
ROLES = ('hero0', 'hero1')
ACTIONS = ActionSet()


def _car(actor_id, role, x, y, length=4.6, width=2.0):
    return VehicleState(actor_id, role, x, y, 0.0, 0.0, length, width, 0.0)


EGO = _car(0, 'hero0', 0.0, -1.75)
NEIGHBOUR = _car(1, 'hero1', 30.0, 5.25)           # two lanes left: sees the hidden car
TRUCK = _car(2, '', 12.0, -1.75, 12.0, 2.6)        # ahead of the ego: hides the car
HIDDEN = _car(3, '', 30.0, -1.75)                  # behind the truck, in the ego's lane


def _observation(ego, others):
    route = np.stack([np.linspace(ego.x, ego.x + 60.0, 13), np.full(13, ego.y)], 1)
    return AgentObservation(0.0, ego, others, route)


OBSERVATIONS = {'hero0': _observation(EGO, [NEIGHBOUR, TRUCK, HIDDEN]),
                'hero1': _observation(NEIGHBOUR, [EGO, TRUCK, HIDDEN])}


class KeepLane:
    """Fleet policy: every valid vehicle keeps speed and lane (a FleetPolicy)."""

    def choose(self, indices, outputs, observations):
        return [(ACTIONS.index(0.0, 0.0), None)] * len(indices)

    def forget(self, index):
        pass


@pytest.fixture(scope='module')
def model():
    torch.set_num_threads(1)
    return load(str(CHECKPOINT), load_optimizers=False).world_model.eval()


def _pipeline(model, **settings):
    xs = np.linspace(-100.0, 200.0, 301)
    lanes = [Lane(f'l{i}', np.stack([xs, np.full_like(xs, y)], 1), 3.5)
             for i, y in enumerate((-5.25, -1.75, 1.75, 5.25))]
    pipeline = VehiclePipeline(model, PipelineConfig(c=0.0, initial_range=50.0, **settings),
                               lanes, Driver(ACTIONS), error_horizon=1)
    pipeline.reset(ROLES)
    return pipeline


def _run(pipeline, steps=5):
    for _ in range(steps):
        out = pipeline.observe(OBSERVATIONS)
        pipeline.act(OBSERVATIONS, KeepLane())
    return out


def _hidden_car_pixels(pipeline):
    ego = Box(EGO.x, EGO.y, EGO.yaw, 4.6, 2.0)
    bev = BevRasterizer(pipeline.bev_config).render(ego, [HIDDEN])
    return bev[CHANNEL_INDEX['seen_vehicles']] > 0


def _vehicles(bev):
    return (bev[CHANNEL_INDEX['seen_vehicles']] > 0) | (bev[CHANNEL_INDEX['shared_vehicles']] > 0)


def test_a_vehicle_only_a_neighbours_latent_holds_enters_the_fused_bev(model):
    shared = _pipeline(model, mode='lsi')
    steps = _run(shared)
    car = _hidden_car_pixels(shared)
    assert steps[0].neighbours == ('hero1',)
    bev = steps[0].bev
    added = bev[CHANNEL_INDEX['shared_vehicles']] > 0
    assert steps[0].view_vehicles == 1
    assert (added & car).sum() >= 0.3 * car.sum(), 'the hidden car is not in the shared channel'
    near_car = cv2.dilate(car.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert not (added & ~near_car).any(), 'the shared channel holds something else'
    assert not (bev[CHANNEL_INDEX['seen_vehicles']] > 0)[car].any()   # the ego does not see it
    assert shared.views_decoded >= 2 and shared.latents_dropped == 0

    # the same steps without sharing, and with sharing but without decoded views
    for settings in ({'mode': 'local'}, {'mode': 'lsi', 'neighbour_views': False}):
        alone = _run(_pipeline(model, **settings))
        assert not _vehicles(alone[0].bev)[car].any(), settings
        assert alone[0].view_vehicles == 0


def test_a_non_finite_neighbour_latent_never_reaches_the_decoder(model):
    pipeline = _pipeline(model, mode='lsi')
    _run(pipeline, 4)
    assert pipeline.accepted[0] == ('hero1',) and pipeline.accepted[1] == ('hero0',)
    message = pipeline.heard['hero1']   # what the next step renders and observes with
    h = message.h.copy()
    h[5] = np.nan
    pipeline.heard['hero1'] = replace(message, h=h)
    rows = []
    hook = model.heads['decoder'].register_forward_hook(
        lambda module, inputs, output: rows.append(inputs[0].detach().clone()))
    try:
        decoded = pipeline.views_decoded
        steps = pipeline.observe(OBSERVATIONS)
    finally:
        hook.remove()
    assert pipeline.latents_dropped == 1
    assert steps[0].neighbours == () and steps[1].neighbours == ('hero0',)
    assert pipeline.views_decoded == decoded + 1               # hero0's latent only
    assert rows and all(torch.isfinite(r).all() for r in rows)
    assert sum(r.shape[0] for r in rows) == 1
    assert steps[0].view_vehicles == 0


def test_the_comm_node_decodes_the_channels_the_perception_stage_expects():
    comm = read_node_defaults(str(Path(__file__).resolve().parents[2] / 'call_comm' / 'config'
                                  / 'comm.yaml'))
    assert tuple(comm['neighbour_view_channels']) == VIEW_CHANNELS
