from glob import glob

from setuptools import find_packages, setup

package_name = 'call_experiments'

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
    description='Evaluation CLI regenerating the CALL paper tables and figures.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'call_evaluate = call_experiments.evaluate:main',
            'call_train_experiments = call_experiments.training_plan:main',
            'call_manifest = call_experiments.manifest:main',
        ],
    },
)
