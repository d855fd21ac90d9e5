"""Bytes per V2V message and per ego per step: full h every step vs replica mode (issue 11).

Per-message sizes are the exact CDR sizes of signed call_msgs/LatentMessage v2 (wire_codec
.serialized_size, equal to rclpy's serialize_message) produced by the real sender code
(replica_link.LinkSender) for a world model of each preset (`small`: 32 x 32 latents, the
nodes' default; `small64g8c`: 128 x 16, z packed with its own layout) driven by random BEVs
(random weights: sizes and replica numerics do not depend on training). The intention holds
the planner's K waypoints (K = `K` of call_planner/config/planner.yaml). Bytes per ego
per step = mean message size x mean number of CALL neighbours inside a communication range on
call_sim scenario four_lane_30 (vehicles keep their initial command); keyframe requests
(first contact, gaps) are not simulated here.

Keyframe period, encoding and max bytes default to call_comm/config/comm.yaml.

Run: python bench/bench_v2v_size.py [--steps 300] [--period N] [--ranges 20 50 100]
"""
import argparse
from pathlib import Path
import tempfile

from call_comm import wire_codec as wc
from call_comm.auth import Fleet, Signer
from call_comm.keyframes import KeyframeConfig, KeyframeSender
from call_comm.keygen import write_fleet
from call_comm.replica import Replica, SequenceModel
from call_comm.replica_link import LinkSender
from call_world_model.config import load_config
from call_world_model.world_model import WorldModel
import numpy as np
import torch
import yaml
from machine_reference import print_reference

PAPER_MB_PER_STEP = 0.106
ROOT = Path(__file__).resolve().parents[1]
PLANNER_CONFIG = ROOT / 'src/call_planner/config/planner.yaml'
COMM_CONFIG = ROOT / 'src/call_comm/config/comm.yaml'
TARGET_MEAN_BYTES = 150


def planner_waypoints() -> int:
    """Read K: the planner sends one intention waypoint per look-ahead step (`K`)."""
    params = yaml.safe_load(PLANNER_CONFIG.read_text())['/**']['ros__parameters']
    return int(params['K'])


def comm_parameters() -> dict:
    """The comm node's configured parameters (keyframe policy)."""
    return yaml.safe_load(COMM_CONFIG.read_text())['/**']['ros__parameters']


class RandomSender:
    """World-model node stand-in: observe random BEVs, emit (z_t, a_{t-1}, h_t)."""

    def __init__(self, model, seed):
        self.model, self.rng, self.state, self.prev = model, np.random.default_rng(seed), None, 0

    def step(self):
        cfg = self.model.cfg
        bev = torch.from_numpy(self.rng.integers(
            0, 2, (1, cfg.bev_channels, cfg.bev_size, cfg.bev_size), dtype=np.uint8))
        with torch.no_grad():
            post, _ = self.model.observe_step(self.state, torch.tensor([self.prev]), bev,
                                              torch.tensor([self.state is None]))
        self.state = post
        action, self.prev = self.prev, int(self.rng.integers(0, cfg.num_actions))
        return (post['stoch'][0].argmax(-1).numpy().astype(np.uint8), action,
                post['deter'][0].numpy().copy())


def message_sizes(preset, steps, period, encoding, max_bytes, signer, waypoints,
                  bev_size=None):
    overrides = {'bev_size': bev_size, 'cnn_mults': [1, 2, 4]} if bev_size else None
    torch.manual_seed(0)
    model = WorldModel(load_config(preset, overrides)).eval()
    seq_model = SequenceModel(model)
    layout = wc.ZLayout.of(model.cfg)
    replica_sender = LinkSender('hero12', signer, wc.H_FP16, waypoints, KeyframeSender(
        KeyframeConfig(period=period, encoding=encoding, max_bytes=max_bytes), seq_model),
        layout=layout)
    full_sender = LinkSender('hero12', signer, wc.H_FP16, waypoints, layout=layout)
    receiver = Replica(seq_model)
    world = RandomSender(model, 0)
    speed, dt = 8.0, 0.1        # the planner's waypoints: one per 0.1 s step at 8 m/s
    plan = np.stack([np.arange(1, waypoints + 1) * speed * dt, np.zeros(waypoints)], 1)
    replica, full, drift, keyframe_msgs = [], [], [], 0
    for seq in range(steps):
        z, a, h = world.step()
        args = (seq, (seq // 10, seq % 10 * 10 ** 8), (0.0, 0.0, 0.0, speed), z, h, a, plan)
        wire = replica_sender.message(*args)
        replica.append(wc.serialized_size(wire))
        keyframe_msgs += wire.h_encoding != wc.H_NONE
        full.append(wc.serialized_size(full_sender.message(*args)))
        update = receiver.observe(seq, z, a, wc.decode_keyframe_part(wire.h_encoding,
                                                                     wire.h_data))
        if update.h is not None:
            drift.append(float(np.max(np.abs(update.h - h))))
    return (np.array(replica), np.array(full), np.array(drift), keyframe_msgs,
            replica_sender.keyframes.reasons)


def neighbours_in_range(scenario, steps, ranges):
    """Mean CALL neighbours within each range (per ego and step) and the CALL fleet size."""
    from call_sim.env import MultiVehicleEnv
    env = MultiVehicleEnv.from_scenario(scenario)
    try:
        obs, _ = env.reset(seed=0)
        counts = {r: [] for r in ranges}
        for _ in range(steps):
            roles = list(obs)
            xy = np.array([[obs[r].ego.x, obs[r].ego.y] for r in roles])
            d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
            for r in ranges:
                counts[r].extend(((d <= r).sum(1) - 1).tolist())
            obs, _, term, trunc, _ = env.step({})
            if not obs:
                break
        return {r: float(np.mean(c)) for r, c in counts.items()}, len(roles)
    finally:
        env.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=300)
    comm = comm_parameters()
    parser.add_argument('--period', type=int, default=int(comm['keyframe_period']))
    parser.add_argument('--ranges', type=float, nargs='+', default=[20.0, 50.0, 100.0],
                        help='communication ranges [m]: initial, mid, max_range of comm.yaml')
    parser.add_argument('--scenario', default='four_lane_30')
    args = parser.parse_args()
    print_reference()
    torch.set_num_threads(1)
    waypoints = planner_waypoints()
    with tempfile.TemporaryDirectory() as tmp:
        fleet = Fleet.load(write_fleet(['hero12'], Path(tmp)))
        signer = Signer.load('hero12', Path(tmp) / 'hero12.key.yaml', fleet)
        configured = comm['keyframe_encoding']
        other = 'fp16' if configured == 'int8' else 'int8'
        rows = [('small', configured, None), ('small', other, None),
                ('small64g8c', configured, None), ('L', configured, 32)]
        max_bytes = int(comm['keyframe_max_bytes'])
        results = {}
        for preset, enc_name, bev in rows:
            rep, full, drift, kf, reasons = message_sizes(
                preset, args.steps, args.period, wc.H_ENCODINGS[enc_name], max_bytes, signer,
                waypoints, bev)
            results[f'{preset}/{enc_name}'] = (rep, full)
            cfg = load_config(preset)
            print(f'[{preset} preset, deter {cfg.deter}, z {cfg.stoch} x {cfg.classes} '
                  f'({wc.ZLayout.of(cfg).packed_bytes} B), keyframes {enc_name} '
                  f'<= {max_bytes} B h_data per message, period {args.period}, '
                  f'{args.steps} steps, K = {waypoints} waypoints]')
            verdict = 'meets' if rep.mean() <= TARGET_MEAN_BYTES else 'misses'
            print(f'  replica: mean {rep.mean():.1f} B  max {rep.max()} B  min {rep.min()} B  '
                  f'({verdict} the {TARGET_MEAN_BYTES} B mean target)  messages with keyframe '
                  f'data {kf}/{len(rep)}  keyframes by reason {reasons}')
            print(f'  full h (fp16 every message): mean {full.mean():.1f} B  max {full.max()} B')
            print(f'  rebuilt vs true h, max abs: mean {drift.mean():.2e}  max {drift.max():.2e}'
                  f' over {len(drift)} synchronised steps')
    try:
        mean_n, vehicles = neighbours_in_range(args.scenario, 100, args.ranges)
    except Exception as exc:  # noqa: B902 - report and go on without the scenario
        print(f'scenario {args.scenario} unavailable: {exc}')
        return
    for comm_range, n in mean_n.items():
        print(f'[{args.scenario}: {vehicles} CALL vehicles, mean {n:.2f} neighbours within '
              f'{comm_range:g} m over 100 steps; paper {PAPER_MB_PER_STEP} MB per ego per step]')
        for name, (rep, full) in results.items():
            r, f = rep.mean() * n, full.mean() * n
            print(f'  {name}: bytes per ego per step replica {r:.0f} B ({r / 1e6:.5f} MB), '
                  f'full h fp16 {f:.0f} B ({f / 1e6:.5f} MB)')
        print(f'  paper-style full h 2048 x float32 (8192 B + 136 B message): '
              f'{(8192 + 136) * n / 1e6:.5f} MB per ego per step')


if __name__ == '__main__':
    main()
