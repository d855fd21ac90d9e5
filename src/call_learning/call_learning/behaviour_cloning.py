"""
Behaviour-cloning warm start of the actor from the privileged teacher (`teacher.py`).

The paper trains the actor-critic in imagination from scratch (DreamerV3); on a CPU budget
that actor never learns to slow down for others. Here the teacher drives every CALL vehicle
of the embedded simulator while the world model observes as it does in training (same BEV,
shared information and mode, `collect.Collector`); each step gives pairs (model features of
the posterior, teacher action). The actor is fitted to them by cross-entropy, the usual BC
warm start before imagination training continues from it (`call_learning.train
--resume`-style from the written checkpoint). The world model is not changed.

    python -m call_learning.behaviour_cloning --checkpoint IN.pt --out OUT.pt \
        --scenario four_lane_demo --steps 3000 --epochs 20

prints the collection and fitting CPU times, the held-out agreement with the teacher and the
teacher's own driving figures (call_sim.driving_metrics).
"""
import argparse
from dataclasses import dataclass
import math
import time
from typing import Any, Dict, List, Optional, Sequence

from call_learning.collect import Collector, PipelineConfig
from call_learning.teacher import teacher_action, TeacherConfig
from call_vehicle.actions import ActionSet
from call_world_model import checkpoint
from call_world_model.actor_critic import ActorCritic
import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class CloneConfig:
    """Numbers of one behaviour-cloning run."""

    steps: int = 3000          # simulator steps of teacher driving (each: every CALL vehicle)
    epochs: int = 20
    batch: int = 256
    lr: float = 3e-4
    holdout: float = 0.1       # fraction of the pairs kept out of fitting (agreement measure)
    # class weights count^-balance: keeping speed straight is most of the teacher's steps,
    # braking the rare ones that matter
    balance: float = 0.5
    seed: int = 0

    def __post_init__(self):
        """Fail fast on numbers that cannot make a run."""
        if self.steps < 1 or self.epochs < 1 or self.batch < 1 or not 0 <= self.holdout < 1:
            raise ValueError(f'invalid behaviour-cloning config {self}')


class TeacherCollector(Collector):
    """A Collector whose vehicles the teacher drives; it keeps (features, action) pairs."""

    def __init__(self, *args: Any, teacher: TeacherConfig = TeacherConfig(), **kwargs: Any):
        """Take `Collector`'s arguments, plus the teacher's configuration."""
        super().__init__(*args, **kwargs)
        self.teacher = teacher
        self.features: List[torch.Tensor] = []
        self.labels: List[np.ndarray] = []
        self.records: List[Any] = []        # call_sim.driving_metrics.VehicleStep

    def policy(self, kind: str = 'teacher', heuristic_prob: float = 0.0) -> 'TeacherPolicy':
        """Return the teacher, who drives every valid vehicle of the pipeline."""
        return TeacherPolicy(self)


class TeacherPolicy:
    """Teacher actions for the valid vehicles; records (model features, action) pairs."""

    def __init__(self, collector: TeacherCollector):
        """Record into ``collector``'s features and labels."""
        self.collector = collector

    def choose(self, indices, outputs, observations):
        """Return the teacher's action per listed vehicle, held for K steps as its plan."""
        c = self.collector
        actions = np.array([teacher_action(o, c.action_set, c.teacher) for o in observations],
                           dtype=np.int64)
        posts = {key: torch.cat([o.post[key] for o in outputs]) for key in outputs[0].post}
        c.features.append(c.wm.features(posts).detach().reshape(len(indices), -1).clone())
        c.labels.append(actions)
        horizon = c.pipeline.driver.horizon
        return [(int(a), [int(a)] * horizon) for a in actions]

    def forget(self, index: int) -> None:
        """Keep nothing: the teacher decides every step anew."""


def collect_pairs(collector: TeacherCollector, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Drive `steps` simulator steps with the teacher; (features (N, F), actions (N,))."""
    collector.start()
    for _ in range(steps):
        collector.step('teacher')
    if not collector.features:
        raise RuntimeError('the teacher drove no step with an observation')
    return torch.cat(collector.features), torch.from_numpy(np.concatenate(collector.labels))


def clone_actor(actor_critic: ActorCritic, features: torch.Tensor, actions: torch.Tensor,
                config: CloneConfig, braking: torch.Tensor) -> Dict[str, float]:
    """
    Fit the actor's logits to the teacher's actions by cross-entropy; held-out figures.

    `braking` (A,) bool marks the decelerating actions, whose recall is reported apart.
    """
    gen = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(len(actions), generator=gen)
    held = int(round(config.holdout * len(actions)))
    test, train = order[:held], order[held:]
    optimizer = torch.optim.Adam(actor_critic.actor.parameters(), lr=config.lr)
    counts = torch.bincount(actions[train], minlength=actor_critic.num_actions).float()
    weights = counts.clamp_min(1.0) ** -config.balance
    weights = weights / (weights * counts).sum() * counts.sum()      # mean weight 1 per pair
    before = _agreement(actor_critic, features[test], actions[test])
    brake_before = _agreement(actor_critic, features[test], actions[test], braking)
    loss = math.nan
    for _ in range(config.epochs):
        shuffled = train[torch.randperm(len(train), generator=gen)]
        for start in range(0, len(shuffled), config.batch):
            idx = shuffled[start:start + config.batch]
            logits = actor_critic.policy(features[idx])
            step_loss = F.cross_entropy(logits, actions[idx], weight=weights)
            optimizer.zero_grad()
            step_loss.backward()
            optimizer.step()
            loss = float(step_loss.detach())
    return {'pairs': float(len(actions)), 'train_loss': loss,
            'heldout_agreement_before': before,
            'heldout_agreement': _agreement(actor_critic, features[test], actions[test]),
            'heldout_braking_pairs': float(braking[actions[test]].sum()),
            'heldout_braking_recall_before': brake_before,
            'heldout_braking_recall': _agreement(actor_critic, features[test], actions[test],
                                                 braking),
            'majority_baseline': float(torch.bincount(actions[train]).max()) / max(len(train), 1)}


def braking_actions(actions: ActionSet) -> torch.Tensor:
    """Mark the decelerating discrete actions: (A,) bool."""
    return torch.tensor([actions.action(i)[0] < 0.0 for i in range(len(actions))])


@torch.no_grad()
def _agreement(actor_critic: ActorCritic, features: torch.Tensor, actions: torch.Tensor,
               among: Optional[torch.Tensor] = None) -> float:
    """Fraction of the teacher's actions the actor's mode repeats (only `among` actions)."""
    if among is not None:
        keep = among[actions]
        features, actions = features[keep], actions[keep]
    if len(actions) == 0:
        return math.nan
    return float((actor_critic.act(features, sample=False) == actions).float().mean())


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Collect teacher pairs with a checkpoint's world model, clone the actor, save."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', required=True, help='world model (+ actor-critic)')
    parser.add_argument('--out', required=True, help='checkpoint written with the cloned actor')
    parser.add_argument('--scenario', default='four_lane_demo')
    parser.add_argument('--mode', default='lsi', help='local | lss | lsi | full')
    parser.add_argument('--c', type=float, default=50.0,
                        help="the range gate's prediction-error threshold c while collecting")
    parser.add_argument('--steps', type=int, default=CloneConfig.steps)
    parser.add_argument('--epochs', type=int, default=CloneConfig.epochs)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from call_sim.env import MultiVehicleEnv
    from call_learning.train import load_train_config
    config = CloneConfig(steps=args.steps, epochs=args.epochs, seed=args.seed)
    loaded = checkpoint.load(args.checkpoint)
    world_model = loaded.world_model.eval()
    actor_critic = loaded.actor_critic
    if actor_critic is None or not loaded.meta.get('has_actor_critic', False):
        torch.manual_seed(args.seed)
        actor_critic = ActorCritic(loaded.cfg, loaded.cfg.feat_dim, loaded.cfg.num_actions)
    settings = PipelineConfig.from_mapping({**load_train_config(), 'mode': args.mode,
                                           'c': args.c})
    cpu = time.process_time()
    with MultiVehicleEnv.from_scenario(args.scenario) as env:
        collector = TeacherCollector(env, world_model, settings, seed=args.seed)
        features, actions = collect_pairs(collector, config.steps)
    collect_cpu = time.process_time() - cpu
    cpu = time.process_time()
    figures = clone_actor(actor_critic, features, actions, config,
                          braking_actions(collector.action_set))
    fit_cpu = time.process_time() - cpu
    checkpoint.save(args.out, world_model, actor_critic, loaded.cfg, loaded.step,
                    extra={'behaviour_cloning': {**figures, 'scenario': args.scenario,
                                                 'mode': args.mode, 'steps': config.steps,
                                                 'epochs': config.epochs}},
                    optimizers=False)
    print(f'collected {int(figures["pairs"])} pairs in {collect_cpu:.1f} s CPU, fitted in '
          f'{fit_cpu:.1f} s CPU; held-out agreement with the teacher '
          f'{figures["heldout_agreement_before"]:.3f} -> {figures["heldout_agreement"]:.3f} '
          f'(majority action {figures["majority_baseline"]:.3f}); braking actions: '
          f'{int(figures["heldout_braking_pairs"])} held out, recall '
          f'{figures["heldout_braking_recall_before"]:.3f} -> '
          f'{figures["heldout_braking_recall"]:.3f}; wrote {args.out}', flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
