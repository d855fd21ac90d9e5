"""Collection from the real embedded simulator (SUMO) with a tiny world model."""
from call_learning.collect import Collector
from call_learning.pipeline import PipelineConfig
from call_learning.replay import SequenceReplay
from call_sim.env import MultiVehicleEnv
from call_world_model.actor_critic import ActorCritic
from call_world_model.config import load_config
from call_world_model.world_model import WorldModel
import numpy as np
import pytest
import torch

SCENARIO = {'map': 'four_lane', 'num_controlled': 3, 'num_background': 120, 'seed': 3}


@pytest.fixture
def env():
    torch.set_num_threads(1)
    simulator = MultiVehicleEnv.from_scenario(SCENARIO)
    try:
        yield simulator
    finally:
        simulator.close()


def tiny():
    torch.manual_seed(0)
    cfg = load_config('tiny')
    return cfg, WorldModel(cfg), ActorCritic(cfg, cfg.feat_dim, cfg.num_actions)


def run(env, mode, steps, c=0.0, policy='heuristic'):
    cfg, wm, ac = tiny()
    collector = Collector(env, wm, PipelineConfig(mode=mode, c=c),
                          actor_critic=ac, seed=5)
    collector.start()
    replay = SequenceReplay(10_000, len(collector.roles))
    collector.replay = replay
    for _ in range(steps):
        collector.step(policy)
    return cfg, collector, replay


def test_lsi_collects_bev_shared_latents_and_intentions(env):
    # c = 0 shares with every CALL vehicle once their states are valid: a state is sent from
    # step K on (E over K steps exists), accepted at the next step and used at the one after
    # (the pipeline's one-step V2V latency)
    steps = 10
    cfg, collector, replay = run(env, 'lsi', steps)
    k = cfg.error_horizon
    assert replay.sizes() == {'hero0': steps, 'hero1': steps, 'hero2': steps}
    batch = replay.sample(3, steps, np.random.default_rng(0))
    assert batch['bev'].shape == (3, steps, cfg.bev_channels, cfg.bev_size, cfg.bev_size)
    assert batch['bev'].dtype == torch.uint8 and int(batch['bev'].max()) == 255
    assert batch['intention'].shape == (3, steps, cfg.intention_points, 2)
    shared = batch['shared']
    assert shared.mask.shape == (3, steps, cfg.max_neighbours)
    # warming up: nobody sends; afterwards the two other CALL vehicles are in range
    assert not bool(shared.mask[:, :k + 2].any())
    assert shared.mask[:, k + 2:].sum(-1).eq(2).all()
    # warming up the vehicles stop: the action fed back is braking straight
    brake = collector.action_set.index(-3.0, 0.0)
    assert bool(batch['prev_action'][:, 1:k + 1].eq(brake).all())
    # received z_j are valid class indices, h_j are real recurrent states, w_j are waypoints
    late = shared.mask[:, k + 2:]
    assert int(shared.z_indices.max()) < cfg.classes
    assert float(shared.h[:, k + 2:][late].abs().sum()) > 0
    assert float(shared.intention[:, k + 2:][late].abs().sum()) > 0
    # the ego's declared waypoints (the bicycle rollout of its plan) lie ahead of it
    assert float(batch['intention'][:, 1:, -1, 0].mean()) > 0
    # before the first plan there is none (zeros)
    assert not bool(batch['intention'][:, 0].any())


def test_lss_messages_carry_the_latent_state_and_no_intention(env):
    # the paper's latent state sharing sends z and h only, so no receiver (its safety
    # monitor included) reads a neighbour's declared plan; CALL's messages carry it
    plans = {}
    for mode in ('lsi', 'lss'):
        cfg, collector, _ = run(env, mode, 8)
        messages = collector.pipeline.messages.values()
        assert len(messages) == 3 and all(len(m.z_indices) == cfg.stoch for m in messages)
        plans[mode] = [m.waypoints.shape for m in messages]
    assert plans['lsi'] == [(5, 2)] * 3
    assert plans['lss'] == [(0, 2)] * 3


def test_local_mode_shares_nothing_and_actor_policy_runs(env):
    cfg, collector, replay = run(env, 'local', 4, policy='actor')
    batch = replay.sample(2, 4, np.random.default_rng(0))
    assert batch['shared'] is None and batch['intention'] is None
    assert batch['prev_action'].max() < cfg.num_actions
    # no shared vehicle or shared waypoint is ever drawn without sharing
    assert int(batch['bev'][:, :, 4:5].sum()) == 0 and int(batch['bev'][:, :, 6].sum()) == 0


def test_full_observation_sees_what_a_blind_sensor_does_not(env):
    _, wm, _ = tiny()
    pixels = {}
    for mode in ('local', 'full'):
        # same seed -> same episode; a 1 mm sensor sees nobody unless observation is full
        collector = Collector(env, wm, PipelineConfig(mode=mode, sensor_range=1e-3), seed=5)
        collector.start()
        replay = SequenceReplay(1000, len(collector.roles))
        collector.replay = replay
        for _ in range(3):
            collector.step('heuristic')
        pixels[mode] = int(replay.sample(12, 3, np.random.default_rng(0))['bev'][:, :, 3].sum())
    assert pixels['local'] == 0
    assert pixels['full'] > 0


def test_bad_settings_fail_fast():
    with pytest.raises(ValueError, match='sharing mode'):
        PipelineConfig(mode='everything')
    with pytest.raises(ValueError, match='threshold c'):
        PipelineConfig(c=-1.0)


def test_episode_end_stores_the_final_frame_then_resets():
    # a 3-step episode: frames 0..3 are stored (3 is the truncated final frame), then a reset
    simulator = MultiVehicleEnv.from_scenario(dict(SCENARIO, episode_steps=3, num_background=20))
    try:
        _, collector, replay = run(simulator, 'local', 6)
        batch = replay.sample(1, 6, np.random.default_rng(0), within_episode=False)
        assert replay.sizes()['hero0'] == 6
        firsts = [bool(v) for v in batch['is_first'][0]]
        # stored frames: ep1 t0..t3 (final frame included), ep2 t0..t1
        assert firsts == [True, False, False, False, True, False]
        assert collector.episodes == 2
    finally:
        simulator.close()


@pytest.mark.parametrize('encoding,tolerance', [('fp16', 2.0 ** -11), ('int8', 1.0 / 254)])
def test_replica_h_tracks_the_senders_h_between_keyframes(env, encoding, tolerance):
    # lss with c = 0: every CALL vehicle receives the other two each step
    cfg, wm, _ = tiny()
    settings = PipelineConfig(mode='lss', c=0.0, h_transport='replica',
                              keyframe_period=4, keyframe_encoding=encoding)
    collector = Collector(env, wm, settings, seed=5)
    collector.start()
    gaps, keyframe_errors = [], []
    pipeline = collector.pipeline
    for step in range(14):
        collector.step('heuristic')
        if not pipeline.messages:       # warming up: nothing sent
            continue
        own = np.stack([stage.state['deter'][0].numpy() for stage in pipeline.models])
        received = np.stack([pipeline.messages[r].h for r in collector.roles])
        error = float(np.abs(received - own).max())
        (keyframe_errors if step % 4 == 0 else gaps).append(error)
    # keyframes are quantised h (|h| < 1: fp16 error <= 2^-11, int8 <= max|h| / 254); rebuilt
    # steps stay close because the sequence model is the sender's own, fed the exact (z, a)
    assert 0.0 < max(keyframe_errors) <= tolerance
    assert max(gaps) < 4.0 * tolerance   # measured: about the keyframe error, carried forward
    with pytest.raises(ValueError, match='condition_sequence_model'):
        Collector(env, WorldModel(load_config('tiny', {'condition_sequence_model': True})),
                  settings)
    with pytest.raises(ValueError, match='h_transport'):
        PipelineConfig(h_transport='carrier pigeon')
