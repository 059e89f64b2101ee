"""``python -m rivetkit``: the ``rivetkit`` command (see :mod:`rivetkit.cli`)."""

import sys

from rivetkit.cli import main

sys.exit(main())
