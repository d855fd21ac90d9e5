from glob import glob

from setuptools import find_packages, setup

package_name = 'call_world_model'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
        ('share/' + package_name + '/checkpoints',
         glob('checkpoints/*.pt') + glob('checkpoints/README.md')),
    ],
    install_requires=['setuptools'],
    extras_require={'test': ['pytest']},
    zip_safe=True,
    maintainer='CALL developers',
    maintainer_email='call@example.org',
    description='DreamerV3-style world model with shared-information conditioning for CALL.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'world_model_node = call_world_model.world_model_node:main',
        ],
        # call_comm (below this package) rebuilds senders' h with this model (replica.py)
        'call_comm.world_model_loaders': [
            'checkpoint = call_world_model.checkpoint:load_shared_world_model',
        ],
        # call_comm decodes accepted neighbours' latents into vehicle masks with this function
        'call_comm.view_decoders': [
            'checkpoint = call_world_model.neighbour_decoding:load_view_decoder',
        ],
    },
)
