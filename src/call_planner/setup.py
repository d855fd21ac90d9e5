from glob import glob

from setuptools import find_packages, setup

package_name = 'call_planner'

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
    description='K-step world-model look-ahead planner with a safety fallback for CALL.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'planner_node = call_planner.planner_node:main',
        ],
    },
)
