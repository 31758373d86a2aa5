"""`python -m helpers ...`: see helpers/cli.py."""

import os
import sys

from .cli import main

try:
    sys.exit(main())
except BrokenPipeError:  # e.g. `python -m helpers list | head`: stop quietly
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(0)
