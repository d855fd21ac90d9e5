"""The ROS tools' environment: the overlay's own prefix on top of the calling workspace."""
import os

from call_bringup import ros_tools

# what colcon writes: setup.bash sources the workspace the overlay was built on (its parent
# prefix) and then local_setup.bash, the overlay's own paths
PARENT_CHAIN = '. "{parent}/local_setup.bash"\n. "{overlay}/local_setup.bash"\n'
PREPEND = 'export PYTHONPATH="{path}${{PYTHONPATH:+:$PYTHONPATH}}"\n'


def test_tools_run_the_calling_workspaces_packages_not_the_overlays_parent(tmp_path,
                                                                           monkeypatch):
    parent, overlay = tmp_path / 'other_checkout_install', tmp_path / 'ros_tools'
    parent.mkdir()
    overlay.mkdir()
    (parent / 'local_setup.bash').write_text(PREPEND.format(path=f'{parent}/site'))
    (overlay / 'local_setup.bash').write_text(PREPEND.format(path=f'{overlay}/site'))
    (overlay / 'setup.bash').write_text(PARENT_CHAIN.format(parent=parent, overlay=overlay))
    monkeypatch.setenv('CALL_ROS_TOOLS', str(overlay))
    monkeypatch.setenv('PYTHONPATH', '/calling/workspace/site')
    env = ros_tools.tools_environment()
    assert env['PYTHONPATH'].split(os.pathsep) == [f'{overlay}/site',
                                                   '/calling/workspace/site']
    assert env['PYTHONUNBUFFERED'] == '1'
