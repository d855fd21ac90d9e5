from glob import glob

from setuptools import find_packages, setup

package_name = 'call_carla'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
    ],
    install_requires=['setuptools'],
    extras_require={'test': ['pytest']},
    zip_safe=True,
    maintainer='CALL developers',
    maintainer_email='call@example.org',
    description='CARLA path for CALL: scenario tool, bridge configuration, metrics.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'call_carla_scenario = call_carla.scenario_tool:main',
            'call_carla_bridge_config = call_carla.bridge_config:main',
            'call_carla_metrics = call_carla.metrics_node:main',
        ],
    },
)
