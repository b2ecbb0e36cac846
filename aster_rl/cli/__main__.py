import sys

from aster_rl.cli import main

sys.exit(main())
