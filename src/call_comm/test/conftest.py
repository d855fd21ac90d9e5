"""Put this package's tests on a DDS domain of their own, discovering only on localhost."""
import os

os.environ['ROS_DOMAIN_ID'] = str(40 + os.getpid() % 10)
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
