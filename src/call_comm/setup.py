from glob import glob

from setuptools import find_packages, setup

package_name = 'call_comm'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
    ],
    install_requires=['setuptools', 'numpy', 'cryptography', 'PyYAML'],
    extras_require={'test': ['pytest']},
    zip_safe=True,
    maintainer='CALL developers',
    maintainer_email='call@example.org',
    description='Prediction-accuracy-gated, compact, signed latent exchange between vehicles.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'comm_node = call_comm.comm_node:main',
            'keygen = call_comm.keygen:main',
        ],
    },
)
