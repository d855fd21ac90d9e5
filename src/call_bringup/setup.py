from glob import glob

from setuptools import find_packages, setup

package_name = 'call_bringup'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.json')),
        # `launch` is a symlink to the workspace's top-level launch/ directory.
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
    ],
    install_requires=['setuptools'],
    extras_require={'test': ['pytest']},
    zip_safe=True,
    maintainer='CALL developers',
    maintainer_email='call@example.org',
    description='CALL node graph, pip-environment runner, demo, inspection and recording.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'call_run = call_bringup.runner:main',
            'call_demo = call_bringup.demo:main',
            'call_inspect = call_bringup.inspect_cli:main',
            'call_record = call_bringup.record:main',
            'v2v_fault_relay = call_bringup.fault_injection:main',
            'vehicle_container = call_bringup.compose:main',
        ],
    },
)
