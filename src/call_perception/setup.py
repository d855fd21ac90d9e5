from glob import glob

from setuptools import find_packages, setup

package_name = 'call_perception'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
    ],
    install_requires=['setuptools'],  # runtime deps: package.xml (rosdep), requirements.txt
    extras_require={'test': ['pytest']},
    zip_safe=True,
    maintainer='CALL developers',
    maintainer_email='call@example.org',
    description='Ego-centric semantic BEV for CALL.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'perception_node = call_perception.perception_node:main',
            'render_bev_example = call_perception.render_example:main',
        ],
    },
)
