"""The shared channel's extra positive weight: off by default, calibrated away when on."""
import math

from call_world_model.config import load_config
from call_world_model.world_model import WorldModel
import pytest
import torch


def _model(**overrides):
    torch.manual_seed(0)
    return WorldModel(load_config('tiny', overrides or None)).eval()


def test_default_is_the_plain_likelihood_and_the_weights_multiply():
    assert _model()._pos_weight(torch.device('cpu')) is None
    weight = _model(image_pos_weight=10.0, image_shared_weight=4.0)._pos_weight(
        torch.device('cpu')).flatten().tolist()
    assert weight == [1.0, 1.0, 1.0, 10.0, 40.0, 1.0, 1.0]   # seen x10, shared x10 x4


def test_calibration_removes_the_whole_log_weight():
    model = _model(image_pos_weight=10.0, image_shared_weight=4.0)
    logits = torch.zeros(2, 7, 4, 4)
    calibrated = model.calibrate(logits)
    assert calibrated[:, 4].unique().item() == pytest.approx(-math.log(40.0))
    assert calibrated[:, 3].unique().item() == pytest.approx(-math.log(10.0))
    assert calibrated[:, 0].abs().max().item() == 0.0
    # the BCE of a positive pixel on the shared channel weighs 40 times the plain one
    target = torch.ones(2, 7, 4, 4)
    nll = model._image_nll(logits, target)
    assert nll[:, 4].mean().item() == pytest.approx(40.0 * math.log(2.0), rel=1e-5)


def test_a_channel_outside_the_bev_fails_fast():
    with pytest.raises(ValueError, match='image_shared_channels'):
        load_config('tiny', {'image_shared_channels': [9]})


@pytest.mark.parametrize('spatial', [False, True])
def test_probabilities_of_some_channels_are_the_full_images_slice_bit_for_bit(spatial):
    # a neighbour's view needs two channels: the decoder computes only those, same values
    overrides = {'image_pos_weight': 10.0, 'image_shared_weight': 4.0}
    if spatial:
        overrides['decoder_input'] = 'spatial'
    model = _model(**overrides)
    cfg = model.cfg
    generator = torch.Generator().manual_seed(3)
    z = torch.randint(0, cfg.classes, (5, cfg.stoch), generator=generator)
    state = {'deter': torch.randn(5, cfg.deter, generator=generator),
             'stoch': torch.nn.functional.one_hot(z, cfg.classes).float()}
    with torch.no_grad():
        full = model.bev_probs(state)
        for channels in ([2, 3], [3], [4, 0, 6]):
            part = model.bev_probs(state, channels)
            assert part.shape == (5, len(channels), cfg.bev_size, cfg.bev_size)
            assert torch.equal(part, full[:, channels])
