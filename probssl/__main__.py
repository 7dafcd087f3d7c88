"""``python -m probssl`` (and ``torchrun -m probssl``) runs the command line."""

import sys

from probssl.cli.main import main

sys.exit(main())
