from setuptools import find_packages, setup

package_name = 'call_vehicle'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    extras_require={'test': ['pytest']},
    zip_safe=False,
    maintainer='CALL developers',
    maintainer_email='call@example.org',
    description='CALL vehicle types (actions, bicycle model, control mapping, intention rule).',
    license='Apache-2.0',
)
