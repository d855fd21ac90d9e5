"""declare_typed / declare_from_yaml on a real rclpy node with command-line overrides."""
from call_common.param_files import ParameterError, read_node_defaults
from call_common.parameters import declare_all, declare_typed
import pytest
import rclpy
from rclpy.node import Node


@pytest.fixture
def make_node():
    context = rclpy.Context()
    rclpy.init(context=context)
    nodes = []

    def make(*overrides: str) -> Node:
        args = ['--ros-args'] + [item for name in overrides for item in ('-p', name)]
        nodes.append(Node('parameters_test', context=context, cli_args=args))
        return nodes[-1]
    yield make
    for node in nodes:
        node.destroy_node()
    rclpy.shutdown(context=context)


def test_lossless_integers_become_floats_and_stay_typed(make_node):
    node = make_node('initial_range:=500', 'accels:=[-2, 0, 2]', 'K:=3')
    assert declare_typed(node, 'initial_range', 20.0) == 500.0
    assert isinstance(node.get_parameter('initial_range').value, float)
    assert declare_typed(node, 'accels', [-2.0, 0.0, 2.0]) == [-2.0, 0.0, 2.0]
    assert declare_typed(node, 'K', 5) == 3
    assert declare_typed(node, 'range_step', 5.0) == 5.0        # not given: the default
    # still statically typed after the conversion
    result = node.set_parameters([rclpy.parameter.Parameter('initial_range', value='far')])
    assert not result[0].successful
    assert node.get_parameter('initial_range').value == 500.0


@pytest.mark.parametrize('override, name, default', [
    ('initial_range:=far', 'initial_range', 20.0),
    ('K:=2.5', 'K', 5),
    ('role_name:=7', 'role_name', 'hero0'),
    ('accels:=[true, false]', 'accels', [-2.0, 0.0]),
])
def test_other_types_raise_one_line_naming_the_parameter(make_node, override, name, default):
    node = make_node(override)
    with pytest.raises(ParameterError, match=f'^parameter {name}: expected ') as error:
        declare_typed(node, name, default)
    assert '\n' not in str(error.value)


def test_declare_all_declares_the_file_with_its_defaults(make_node, tmp_path):
    path = tmp_path / 'node.yaml'
    path.write_text('/**:\n  ros__parameters:\n    use_sim_time: true\n    c: 50.0\n'
                    '    role_name: hero0\n    steers: [-0.2, 0.2]\n    K: 5\n')
    node = make_node('c:=10')
    values = declare_all(node, read_node_defaults(str(path)))
    assert values == {'use_sim_time': False, 'c': 10.0, 'role_name': 'hero0',
                      'steers': [-0.2, 0.2], 'K': 5}
    assert {name: node.get_parameter(name).value for name in values} == values


@pytest.mark.parametrize('text', ['a: 1\n', '/**:\n  other: {}\n', '[1, 2]\n', ': :\n'])
def test_a_file_without_node_defaults_is_refused_with_its_path(tmp_path, text):
    path = tmp_path / 'bad.yaml'
    path.write_text(text)
    with pytest.raises(ParameterError, match=str(path)):
        read_node_defaults(str(path))
