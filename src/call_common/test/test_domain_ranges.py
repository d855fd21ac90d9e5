"""
Every package's tests talk DDS on a ROS_DOMAIN_ID range of their own.

Why: colcon runs packages' tests side by side; two packages on one domain see each other's
nodes and topics (e.g. two /hero0 graphs), which makes results depend on what else runs.
Each package picks ``BASE + pid % WIDTH`` in its test conftest (call_msgs in its test file);
this test reads every such assignment in the workspace and checks the ranges are disjoint.
"""
import glob
import os
import re

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
ASSIGNMENT = re.compile(
    r"ROS_DOMAIN_ID'\]\s*=\s*str\(\s*(\d+)\s*\+\s*os\.getpid\(\)\s*%\s*(\d+)\s*\)")
# Linux: domains above 101 collide with the ephemeral port range; 0 is every shell's default
LOWEST, HIGHEST = 1, 101


def domain_ranges(src: str = ROOT) -> dict:
    """Map package name -> list of (first, last) domain IDs its test files assign."""
    ranges: dict = {}
    for path in sorted(glob.glob(os.path.join(src, '*', 'test', '*.py'))):
        package = os.path.basename(os.path.dirname(os.path.dirname(path)))
        with open(path, encoding='utf-8') as handle:
            for base, width in ASSIGNMENT.findall(handle.read()):
                ranges.setdefault(package, []).append((int(base), int(base) + int(width) - 1))
    return ranges


def packages_using_dds(src: str = ROOT) -> set:
    """Return the packages whose tests create ROS contexts or start ROS processes."""
    using = set()
    for path in glob.glob(os.path.join(src, '*', 'test', '*.py')):
        with open(path, encoding='utf-8') as handle:
            text = handle.read()
        if 'import rclpy' in text or '--ros-args' in text or 'call_bringup.run' in text:
            using.add(os.path.basename(os.path.dirname(os.path.dirname(path))))
    return using


def test_the_workspace_sources_are_here():
    assert os.path.isdir(os.path.join(ROOT, 'call_common', 'test')), (
        f'{ROOT} is not the workspace src/: run the tests from the source tree')


def test_every_package_with_dds_tests_has_one_range():
    ranges = domain_ranges()
    missing = packages_using_dds() - set(ranges)
    assert not missing, f'packages whose tests use DDS without a domain range: {missing}'
    several = {p: r for p, r in ranges.items() if len(set(r)) > 1}
    assert not several, f'packages with more than one range: {several}'


def test_domain_ranges_are_disjoint_and_valid():
    spans = sorted((r[0], p) for p, r in domain_ranges().items())
    assert len(spans) >= 9, spans
    for (first, last), package in spans:
        assert LOWEST <= first <= last <= HIGHEST, (package, first, last)
    for ((_, last), package), ((first, _), other) in zip(spans, spans[1:]):
        assert last < first, f'{package} and {other} share domain IDs {first}..{last}'
