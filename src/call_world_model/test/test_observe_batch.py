"""observe_together / ObserveBatcher: one batch gives every vehicle its own batch-1 posterior."""
from call_world_model.observe_batch import observe_together, ObserveBatcher, ObserveRequest
from call_world_model.prediction import PredictionErrorTracker
from call_world_model.shared_pooling import SharedBatch
from call_world_model.world_model import WorldModel
from helpers_wm import random_shared, tiny_config
import numpy as np
import pytest
import torch


@pytest.fixture
def model():
    torch.manual_seed(0)
    return WorldModel(tiny_config()).eval()


def _bev(cfg, seed):
    gen = torch.Generator().manual_seed(seed)
    size = cfg.bev_size
    return (torch.rand(1, cfg.bev_channels, size, size, generator=gen) > 0.8).to(torch.uint8)


def _alone(model, request):
    """Run the unbatched step the node ran before batching (deterministic mode)."""
    with torch.inference_mode():
        post, _ = model.observe_step(
            request.state, torch.tensor([request.prev_action]), request.bev,
            torch.tensor([request.state is None]), request.shared, request.intention,
            sample=False, with_prior=False)
    return post


def _requests(model):
    """Mixed rows: episode start or not, 0 / 1 / 3 neighbours, with and without a plan."""
    cfg = model.cfg
    gen = torch.Generator().manual_seed(1)
    previous = _alone(model, ObserveRequest(None, 0, _bev(cfg, 9)))
    one = random_shared(cfg, (1,), 1, gen)
    three = random_shared(cfg, (1,), 3, gen)
    trimmed = SharedBatch(**{name: getattr(three, name)[:, :3] for name in
                             ('z_indices', 'h', 'intention', 'rel_pose', 'mask')})
    plan = 5.0 * torch.randn(1, cfg.intention_points, 2, generator=gen)
    return [
        ObserveRequest(None, 0, _bev(cfg, 1)),
        ObserveRequest(previous, 3, _bev(cfg, 2), one, plan),
        ObserveRequest(previous, 7, _bev(cfg, 3), trimmed, None),
        ObserveRequest(None, 2, _bev(cfg, 4), None, plan),
    ]


def test_a_batch_of_one_is_exactly_observe_step(model):
    request = _requests(model)[1]
    with torch.inference_mode():
        post = observe_together(model, [request], sample=False)[0]
    alone = _alone(model, request)
    for key in alone:
        assert torch.equal(post[key], alone[key]), key


def test_batched_rows_match_their_own_steps(model):
    requests = _requests(model)
    with torch.inference_mode():
        posts = observe_together(model, requests, sample=False)
    assert len(posts) == len(requests)
    for request, post in zip(requests, posts):
        alone = _alone(model, request)
        assert post['deter'].shape == alone['deter'].shape == (1, model.cfg.deter)
        torch.testing.assert_close(post['deter'], alone['deter'], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(post['logits'], alone['logits'], atol=1e-4, rtol=1e-4)
        assert torch.equal(post['stoch'], alone['stoch'])
    # the rows really differ (a mix-up of rows would not pass the checks above by accident)
    assert not torch.allclose(posts[0]['logits'], posts[3]['logits'])


def test_concat_pads_and_masks_neighbour_slots(model):
    cfg = model.cfg
    one = random_shared(cfg, (1,), 1)
    out = SharedBatch.concat([None, one], cfg)
    assert out.mask.shape == (2, cfg.max_neighbours)
    assert not out.mask[0].any()
    assert out.mask[1].tolist() == one.mask[0].tolist()
    assert torch.equal(out.h[1], one.h[0])
    out.validate(cfg)


def test_batcher_runs_queued_steps_once_and_hands_each_its_post(model):
    batcher = ObserveBatcher(model, sample=False)
    requests = _requests(model)[:3]
    got = []
    opened = [batcher.submit(r, lambda post, tracked, i=i: got.append((i, post)))
              for i, r in enumerate(requests)]
    assert opened == [True, False, False]
    assert batcher.flush() == 3
    assert [i for i, _ in got] == [0, 1, 2]
    for (i, post), request in zip(got, requests):
        torch.testing.assert_close(post['deter'], _alone(model, request)['deter'],
                                   atol=1e-5, rtol=1e-5)
    assert batcher.stats == {'batches': 1, 'items': 3, 'largest': 3}
    assert batcher.flush() == 0
    assert batcher.submit(requests[0], lambda post, tracked: None) is True


def test_one_batcher_per_model_object(model):
    other = WorldModel(model.cfg)
    assert ObserveBatcher.for_model(model) is ObserveBatcher.for_model(model)
    assert ObserveBatcher.for_model(other) is not ObserveBatcher.for_model(model)


def test_batcher_updates_each_tracker_as_its_own_update_would(model):
    """The trackers of a batch roll their tracks as one batch; E matches separate updates."""
    requests = _requests(model)
    batched = [PredictionErrorTracker(3, model) for _ in requests]
    alone = [PredictionErrorTracker(3, model) for _ in requests]
    batcher = ObserveBatcher(model, sample=False)
    for step in range(5):
        got = {}
        for i, (request, tracker) in enumerate(zip(requests, batched)):
            request.tracker, request.plan_xy = tracker, np.array([[step, 0.0], [step + 1, i]])
            batcher.submit(request, lambda post, tracked, i=i: got.update({i: tracked}))
        batcher.flush()
        for i, request in enumerate(requests):
            expected = alone[i].update(_alone(model, request), request.prev_action,
                                       request.plan_xy)
            assert got[i][1] == expected[1]
            assert got[i][0] == pytest.approx(expected[0], rel=1e-4, abs=1e-4)
        assert step < 3 or all(tracked[1] for tracked in got.values())
    assert len({round(t.last_error, 3) for t in batched}) > 1    # trackers kept apart


def test_a_batch_without_an_episode_start_needs_no_initial_state(model):
    """The initial state is a prior step of its own: made only for rows that start."""
    mixed = _requests(model)
    requests = [r for r in mixed if r.state is not None]
    made = []
    initial_state = model.initial_state

    def counted(batch):
        made.append(batch)
        return initial_state(batch)
    model.initial_state = counted
    try:
        with torch.inference_mode():
            posts = observe_together(model, requests, sample=False)
            assert made == []
            observe_together(model, mixed, sample=False)     # two rows start: one state
            assert made == [1]
    finally:
        del model.initial_state
    for request, post in zip(requests, posts):
        alone = _alone(model, request)
        torch.testing.assert_close(post['deter'], alone['deter'], atol=1e-5, rtol=1e-5)
        assert torch.equal(post['stoch'], alone['stoch'])
