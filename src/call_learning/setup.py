from glob import glob

from setuptools import find_packages, setup

package_name = 'call_learning'

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
    description='Fleet experience collection, replay, training and evaluation for CALL.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'call_train = call_learning.train:main',
            'call_evaluate_prediction = call_learning.evaluate_prediction:main',
        ],
    },
)
