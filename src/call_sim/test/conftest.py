"""Put this package's tests on a DDS domain of their own; the shared env fixture."""
import os

from call_sim.env import MultiVehicleEnv
import pytest

os.environ['ROS_DOMAIN_ID'] = str(10 + os.getpid() % 10)
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'


@pytest.fixture
def make_env():
    """Create MultiVehicleEnvs from scenarios; every one is closed after the test."""
    envs = []

    def make(scenario):
        envs.append(MultiVehicleEnv.from_scenario(scenario))
        return envs[-1]
    yield make
    for env in envs:
        env.close()
