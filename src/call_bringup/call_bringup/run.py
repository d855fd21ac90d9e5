"""`python -m call_bringup.run`: same as the `call_run` console script."""
import sys

from call_bringup.runner import main

if __name__ == '__main__':
    sys.exit(main())
