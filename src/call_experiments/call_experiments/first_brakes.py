"""
`call_first_brakes`: what chose the ego's first deceleration in the scripted crossings.

A diagnostic of `call_experiments.occlusion_encounters`: the same encounters, driven the
same way (`run_encounter`), with the ego's planner read at every step. For the step that
`driving_metrics.first_deceleration` takes as the ego's first deceleration (acceleration
at most -1 m/s^2), the record says what decided the braking control:

- `monitor`: the TTC monitor overrode the plan (its level and the override's cause);
- `plan_step`: a kept plan executed an action after its first one, i.e. a brake that the
  actor chose for a later step of the eq. 3 rollout (`planned_at`: when that plan was made,
  and what its first action was);
- `lookahead`: the look-ahead ran this step and its first action brakes. The chosen
  candidate's score is taken apart into the eq. 3 terms, teacher-forced along each
  candidate's planned actions (`reward` sum, `value` term, `occupancy` cost) and the
  rescoring costs (`route`, `conflict`); `versus` is the best non-braking candidate, `deltas`
  the brake's lead over it per term, `decisive` the terms without which a non-braking
  candidate would have won, and `tracks` the conflict cost's tracks (ego frame).

The figures are what the ego knew and planned; nothing here changes the driving (a
deterministic look-ahead is recomputed, not resampled).

    python -m call_experiments.first_brakes --seeds 10 --encounters 20 --c 22 \
        --modes lsi local --out /tmp/brakes

writes OUT/first_brakes_<mode>[_c<c>]_<seed>.json. Tuning seeds only (10, 11).
"""
import argparse
from collections import Counter
import json
import math
from pathlib import Path
import sys
from typing import Any, Callable, Dict, List, Optional

from call_experiments import encounter_script as script
from call_experiments import occlusion_encounters as oe
from call_experiments.driving_eval import (c_tag, DEFAULT_C, load_policy_models,
                                           shipped_checkpoint)
from call_experiments.experiment_config import parse_sets
from call_learning.pipeline import MODES
from call_planner.plan_stage import planner_params
from call_planner.replanning import _made, ReplanningPolicy
from call_planner.ttc_monitor import NONE
import numpy as np
import torch

TERMS = ('reward', 'value', 'occupancy', 'route', 'conflict')


@torch.inference_mode()
def forced_terms(policy: ReplanningPolicy, state: Dict[str, torch.Tensor],
                 candidates: np.ndarray, kwargs: Dict[str, Any]) -> Dict[str, np.ndarray]:
    """
    Return the eq. 3 terms of each candidate (B, K) along its own planned actions.

    reward: sum_k gamma^k c_{<=k} r_hat; value: gamma^K c_{<=K} v; occupancy: the cost
    subtracted (positive = charged), as `lookahead.rollout_scores` computes them.
    """
    from call_planner.lookahead import expand_kwargs, expand_state
    wm, ac, occ = policy.world_model, policy.actor_critic, policy.occupancy
    gamma, horizon = policy.config.gamma, candidates.shape[1]
    batch = len(candidates)
    s = expand_state(state, batch)
    kw = expand_kwargs(kwargs, batch)
    reward = torch.zeros(batch)
    alive = torch.ones(batch)
    decoded = set(occ.decoded_steps(horizon)) if occ is not None else set()
    feats, weights = [], []
    acts = torch.as_tensor(candidates, dtype=torch.long)
    for k in range(horizon):
        s = wm.imagine_step(s, acts[:, k], **kw)
        if k in decoded:
            feats.append(wm.features(s))
            weights.append((gamma ** k) * alive)
        reward = reward + (gamma ** k) * alive * wm.reward(s).float()
        alive = alive * wm.cont(s).float()
    value = (gamma ** horizon) * alive * ac.value(wm.features(s)).float()
    occupancy = torch.zeros(batch)
    if feats:
        overlaps = occ.overlap(torch.cat(feats)).view(len(feats), -1)
        occupancy = occ.discounted(overlaps.float(), torch.stack(weights))
    return {'reward': reward.numpy().astype(float), 'value': value.numpy().astype(float),
            'occupancy': occupancy.numpy().astype(float)}


class EgoRecorder:
    """Wraps `ReplanningPolicy.step` and the fleet's step to log the ego's decisions."""

    def __init__(self, fleet: Any) -> None:
        """Bind the fleet whose ego (`script.EGO`) is read."""
        self.fleet = fleet
        self.ego_index = fleet.pipeline.roles.index(script.EGO) if fleet.pipeline.roles \
            else None
        self.now = 0.0
        self.log: Dict[float, Dict[str, Any]] = {}   # decision time -> what happened
        self.plans: Dict[float, Dict[str, Any]] = {}  # plan time -> the plan (look-ahead)
        self._original = ReplanningPolicy.step
        recorder = self

        def step(policy, state, imagine_kwargs=None, route=None, planned=None):
            if not recorder.is_ego(policy):
                return recorder._original(policy, state, imagine_kwargs, route, planned)
            refresh, replan = policy._due()
            conflict_replan = not replan and policy._kept_plan_conflicts(route)
            age = policy._active_age
            decision = recorder._original(policy, state, imagine_kwargs, route, planned)
            entry = {'action': int(decision.action), 'replanned': bool(decision.replanned),
                     'conflict_replan': bool(conflict_replan),
                     'age': 0 if decision.replanned else age}
            if decision.replanned:
                recorder.plans[round(recorder.now, 2)] = recorder.take_apart(
                    policy, _made(state), imagine_kwargs or {}, route, decision.active)
            recorder.log[round(recorder.now, 2)] = entry
            return decision
        ReplanningPolicy.step = step

    def close(self) -> None:
        """Restore `ReplanningPolicy.step`."""
        ReplanningPolicy.step = self._original

    def is_ego(self, policy: ReplanningPolicy) -> bool:
        """Whether `policy` is the ego's stage's policy (the stage of this encounter)."""
        stage = self.fleet.policy.stages.get(self.ego_index)
        return stage is not None and stage.policy is policy

    def take_apart(self, policy: ReplanningPolicy, state: Dict[str, torch.Tensor],
                   kwargs: Dict[str, Any], route: Any, plan: Any) -> Dict[str, Any]:
        """Return the final plan's candidates with every term of their scores."""
        candidates = np.asarray(plan.candidates)
        terms = forced_terms(policy, state, candidates, kwargs)
        for name, cost in (('route', policy.route_cost), ('conflict', policy.conflict_cost)):
            terms[name] = (cost.cost(candidates, route) if cost is not None and route is not None
                           else np.zeros(len(candidates)))
        total = terms['reward'] + terms['value'] - terms['occupancy'] - terms['route'] \
            - terms['conflict']
        tracks = []
        if route is not None and len(route.tracks):
            x, y, yaw = route.pose
            ttc = policy.conflict_cost.track_ttc(candidates, route) if \
                policy.conflict_cost is not None else None
            for n, k in enumerate(route.tracks):
                dx, dy = k.x - x, k.y - y
                tracks.append({
                    'ahead_m': round(math.cos(yaw) * dx + math.sin(yaw) * dy, 2),
                    'left_m': round(-math.sin(yaw) * dx + math.cos(yaw) * dy, 2),
                    'yaw_deg': round(math.degrees(math.remainder(k.yaw - yaw, math.tau)), 1),
                    'speed': round(math.hypot(k.vx, k.vy), 2),
                    'size': (round(k.length, 1), round(k.width, 1)),
                    'shared_only': bool(k.shared_only),
                    'ttc_chosen': None if ttc is None
                    or not math.isfinite(ttc[plan.first_action, n])
                    else round(float(ttc[plan.first_action, n]), 2)})
        return {'candidates': candidates.tolist(), 'scores': np.asarray(plan.scores).tolist(),
                'terms': {k: v.tolist() for k, v in terms.items()},
                'forced_total': total.tolist(), 'first_action': int(plan.first_action),
                'speed': round(float(route.speed), 2) if route is not None else None,
                'reference_speed': None if policy.route_cost is None or route is None else
                round(policy.route_cost.reference_speed(np.asarray(route.route, float)), 2),
                'tracks': tracks}


def describe(assessment: Any, ego: Any, yaw_rate: float) -> Optional[Dict[str, Any]]:
    """Return the monitor's verdict with its conflicting track in the ego frame."""
    if assessment is None:
        return None
    out = {'ttc': round(float(assessment.ttc), 2), 'level': assessment.level,
           'anticipated': bool(getattr(assessment, 'anticipated', False)),
           'ego_speed': round(float(ego.speed), 2), 'yaw_rate': round(float(yaw_rate), 3),
           'ego_pose': (round(ego.x, 2), round(ego.y, 2), round(ego.yaw, 3))}
    k = assessment.conflict
    if k is not None:
        dx, dy = k.x - ego.x, k.y - ego.y
        out.update(ahead_m=round(math.cos(ego.yaw) * dx + math.sin(ego.yaw) * dy, 2),
                   left_m=round(-math.sin(ego.yaw) * dx + math.cos(ego.yaw) * dy, 2),
                   yaw_deg=round(math.degrees(math.remainder(k.yaw - ego.yaw, math.tau)), 1),
                   speed=round(math.hypot(k.vx, k.vy), 2), size=(round(k.length, 1),
                                                                 round(k.width, 1)),
                   shared_only=bool(k.shared_only), message=bool(k.known))
    return out


def verdict(plan: Dict[str, Any], brakes: List[int]) -> Dict[str, Any]:
    """Tell which terms made the look-ahead's braking first action win over not braking."""
    scores = np.asarray(plan['scores'])
    terms = {k: np.asarray(v) for k, v in plan['terms'].items()}
    signed = {'reward': terms['reward'], 'value': terms['value'],
              'occupancy': -terms['occupancy'], 'route': -terms['route'],
              'conflict': -terms['conflict']}
    chosen = plan['first_action']
    others = [a for a in range(len(scores)) if a not in brakes]
    versus = max(others, key=lambda a: scores[a])
    deltas = {k: round(float(v[chosen] - v[versus]), 4) for k, v in signed.items()}
    decisive = []
    for name in TERMS:
        without = scores - signed[name]
        if int(np.argmax(without)) not in brakes:
            decisive.append(name)
    return {'chosen': chosen, 'versus': versus, 'margin': round(float(scores[chosen]
                                                                      - scores[versus]), 4),
            'deltas': deltas, 'decisive': decisive,
            'forced_matches': bool(np.allclose(plan['forced_total'], scores, atol=2e-3))}


def explain(recorder: EgoRecorder, record: Dict[str, Any], decided: Dict[float, tuple],
            brakes: List[int], dt: float) -> Optional[Dict[str, Any]]:
    """Return what chose the ego's first deceleration of an encounter (None: it did not brake)."""
    if record['first_decel_s'] is None:
        return None
    wanted = record['reference_s'] + record['first_decel_s'] - dt      # decided at
    t = min(decided, key=lambda k: abs(k - wanted))
    level, cause, assessed = decided[t]
    entry = recorder.log.get(t, {})
    out = {'decided_at': t, 'level': level, 'override_cause': cause,
           'action': entry.get('action'), **oe.known(record)}
    if level != NONE:
        out.update(source='monitor', monitor=assessed)
        return out
    if not entry:
        out['source'] = 'no_plan'       # stopped / scripted hold
        return out
    if not entry['replanned']:
        made = max(p for p in recorder.plans if p <= t)
        plan = recorder.plans[made]
        out.update(source='plan_step', age=entry['age'], planned_at=made,
                   plan_first_action=plan['first_action'],
                   plan=plan['candidates'][plan['first_action']])
        return out
    plan = recorder.plans[t]
    out.update(source='lookahead', conflict_replan=entry['conflict_replan'],
               speed=plan['speed'], reference_speed=plan['reference_speed'],
               tracks=plan['tracks'], **verdict(plan, brakes))
    return out


def run_seed(loaded: Any, mode: str, seed: int, encounters: int, planner: Dict[str, Any],
             c: float) -> List[Dict[str, Any]]:
    """Every encounter of one seed in one mode, each with its first brake explained."""
    out = []
    for fleet, env, encounter in oe.seed_encounters(loaded, mode, seed, encounters, planner, c):
        driver = fleet.pipeline.driver
        brakes = [i for i in range(len(driver.actions)) if driver.actions.action(i)[0] < 0]
        original_step = fleet.step
        index = encounter.index
        decided: Dict[float, tuple] = {}
        recorder = EgoRecorder(fleet)

        def step(observations, now, dt, recorder=recorder, decided=decided):
            recorder.ego_index = fleet.pipeline.roles.index(script.EGO)
            recorder.now = now
            before = Counter(fleet.override_causes)
            result = original_step(observations, now, dt)
            verdict = fleet.verdicts.get(script.EGO)
            cause = Counter(fleet.override_causes) - before
            level = result[script.EGO][1] if script.EGO in result else NONE
            decided[round(now, 2)] = (level, ','.join(cause) if level != NONE else None,
                                      describe(verdict, observations[script.EGO].ego,
                                               fleet.yaw_rates.get(script.EGO, 0.0)))
            return result
        fleet.step = step
        try:
            record = oe.run_encounter(fleet, env, encounter)
        finally:
            fleet.step = original_step
            recorder.close()
        why = explain(recorder, record, decided, brakes, env.dt)
        out.append({'encounter': index, 'first_decel_s': record['first_decel_s'],
                    'first_seen_s': record['first_seen_s'],
                    'first_heard_s': record['first_heard_s'], 'why': why})
        if why:
            print(f'call_first_brakes: {mode} c={c:g} seed {seed} #{index}: decel '
                  f'{record["first_decel_s"]} known {why["first_known_s"]} '
                  f'before {why["decel_before_known"]} source {why["source"]} '
                  f'{why.get("decisive", "")} {why.get("deltas", "")}', flush=True)
    return out


def tuning_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """Return the options of a per-step diagnostic of the scripted encounters (this one's)."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.strip().splitlines()[0])
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--modes', nargs='+', default=['lsi', 'local'], choices=MODES)
    parser.add_argument('--seeds', nargs='+', type=int, default=[10])
    parser.add_argument('--encounters', type=int, default=20)
    parser.add_argument('--c', type=float, default=DEFAULT_C)
    parser.add_argument('--out', required=True)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--set', dest='sets', action='append', default=[],
                        metavar='PARAM=VALUE', help='override a planner.yaml parameter')
    return parser


def run_all(args: argparse.Namespace, run: Callable[..., List[Dict[str, Any]]],
            stem: str) -> int:
    """`run(loaded, mode, seed, encounters, planner, c)` per seed and mode, into OUT as JSON."""
    torch.set_num_threads(args.threads)
    planner = planner_params(parse_sets(args.sets))
    loaded = load_policy_models(args.checkpoint or shipped_checkpoint())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for mode in args.modes:
            rows = run(loaded, mode, seed, args.encounters, planner, args.c)
            (out / f'{stem}_{mode}{c_tag(args.c)}_{seed}.json').write_text(
                json.dumps(rows, indent=1, default=str))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: explain every encounter's first brake per mode and seed."""
    return run_all(tuning_parser('call_first_brakes', __doc__).parse_args(argv), run_seed,
                   'first_brakes')


if __name__ == '__main__':
    sys.exit(main())
