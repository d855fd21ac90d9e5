"""Parameter files read without ROS: overrides follow the nodes' typing rule."""
from call_common.param_files import ParameterError, with_overrides
import pytest

DEFAULTS = {'K': 5, 'gamma': 0.99, 'name': 'hero0', 'accels': [-3.0, 0.0, 2.0], 'flag': False}


def test_overrides_are_typed_as_their_defaults():
    params = with_overrides(DEFAULTS, {'K': '3', 'gamma': 1, 'name': '7', 'accels': [-2, 0, 1],
                                       'flag': 'true'})
    assert params == {'K': 3, 'gamma': 1.0, 'name': '7', 'accels': [-2.0, 0.0, 1.0],
                      'flag': True}
    assert isinstance(params['gamma'], float) and isinstance(params['name'], str)
    assert with_overrides(DEFAULTS) == DEFAULTS and with_overrides(DEFAULTS) is not DEFAULTS


@pytest.mark.parametrize('overrides, message', [
    ({'k': 3}, "unknown parameter 'k'"),
    ({'gamma': True}, 'parameter gamma: expected float'),
    ({'K': 2.5}, 'parameter K: expected int'),
    ({'K': 'far'}, 'parameter K: expected int'),
])
def test_a_wrong_override_fails_naming_the_parameter(overrides, message):
    with pytest.raises(ParameterError, match=message):
        with_overrides(DEFAULTS, overrides)
