from glob import glob

from setuptools import find_packages, setup

package_name = 'call_sim'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={package_name: ['maps/*/*.xml', 'maps/*/*.xodr']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
        ('share/' + package_name + '/config/scenarios', glob('config/scenarios/*.yaml')),
    ],
    install_requires=['setuptools'],
    extras_require={'test': ['pytest']},
    zip_safe=False,
    maintainer='CALL developers',
    maintainer_email='call@example.org',
    description='Embedded SUMO simulator speaking the CARLA ROS bridge contract.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'sim_node = call_sim.sim_node:main',
            'build_maps = call_sim.build_maps:main',
        ],
    },
)
