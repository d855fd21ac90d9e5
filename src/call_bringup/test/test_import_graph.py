"""
The import graph of the CALL packages: arrows only point down, no circle, all declared.

Every module under src/*/call_*/ is parsed (ast, so imports inside functions count too: a
lazy import is an arrow all the same). The layer order is the one DEVELOPERS.md states:
a package may import only packages of lower layers, never one of its own layer or above.
Inside a package the modules must not import each other in a circle. And every CALL package
a package imports is declared in its package.xml (exec_depend), so colcon orders the build
and a deployment installs it.
"""
import ast
from pathlib import Path
import xml.etree.ElementTree as ElementTree

import pytest

SRC = Path(__file__).resolve().parents[2]

# bottom to top; packages in one layer must not import each other
LAYERS = (
    ('call_msgs', 'call_common'),
    ('call_vehicle',),
    ('call_sim', 'call_perception', 'call_comm'),
    ('call_world_model',),
    ('call_learning',),
    ('call_planner',),
    ('call_carla', 'call_experiments'),
    ('call_bringup',),
)
LAYER = {package: level for level, names in enumerate(LAYERS) for package in names}


def python_packages():
    """Name -> source directory of every ament_python CALL package of the workspace."""
    found = {}
    for directory in sorted(SRC.glob('call_*/call_*')):
        if directory.is_dir() and directory.name == directory.parent.name \
                and (directory / '__init__.py').is_file():
            found[directory.name] = directory
    return found


def module_name(package_dir: Path, path: Path) -> str:
    parts = path.relative_to(package_dir.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imported_modules(path: Path):
    """Every absolute module name `path` imports (``from a import b`` also names ``a.b``)."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            for alias in node.names:
                yield f'{node.module}.{alias.name}'


def module_graph():
    """Map every module to the CALL modules it imports (over every package's sources)."""
    packages = python_packages()
    modules = {}
    for name, directory in packages.items():
        for path in sorted(directory.rglob('*.py')):
            modules[module_name(directory, path)] = path
    graph = {}
    for module, path in modules.items():
        targets = set()
        for imported in imported_modules(path):
            if imported.split('.')[0].startswith('call_') and imported != module:
                # the longest known module the name refers to (a.b.func -> a.b)
                parts = imported.split('.')
                while parts and '.'.join(parts) not in modules:
                    parts.pop()
                targets.add('.'.join(parts) if parts else imported)
        graph[module] = targets
    return graph


def declared_dependencies(package: str):
    manifest = ElementTree.parse(SRC / package / 'package.xml').getroot()
    return {element.text for element in manifest.iter('exec_depend')}


def find_cycle(graph):
    """One circle of the directed graph as a list of nodes, or None."""
    state = {}

    def visit(node, path):
        state[node] = 'open'
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 'open':
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target, path)
                if found:
                    return found
        path.pop()
        state[node] = 'done'
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


def test_every_package_has_a_layer():
    unknown = sorted(set(python_packages()) - set(LAYER))
    assert not unknown, f'packages without a layer in this test: {unknown}'


def test_package_imports_point_down_only():
    upward = []
    for module, targets in module_graph().items():
        source = module.split('.')[0]
        for target in targets:
            package = target.split('.')[0]
            if package != source and LAYER.get(package, -1) >= LAYER[source]:
                upward.append(f'{module} -> {target}')
    assert not upward, 'imports that do not point down:\n' + '\n'.join(sorted(upward))


def test_imported_packages_are_declared():
    missing = set()
    for module, targets in module_graph().items():
        source = module.split('.')[0]
        declared = declared_dependencies(source)
        for target in targets:
            package = target.split('.')[0]
            if package != source and package not in declared:
                missing.add(f'{source} imports {package} ({module})')
    assert not missing, 'undeclared package dependencies:\n' + '\n'.join(sorted(missing))


def test_no_circle_between_modules():
    graph = module_graph()
    assert find_cycle(graph) is None, f'import circle: {" -> ".join(find_cycle(graph))}'


@pytest.mark.parametrize('graph, circle', [
    ({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}, True),
    ({'a': {'b', 'c'}, 'b': {'c'}, 'c': set()}, False),
])
def test_the_circle_finder_finds_circles(graph, circle):
    assert (find_cycle(graph) is not None) == circle
