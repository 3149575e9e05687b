"""``python -m cmtoolkit``: the ``cmtoolkit`` command."""

import sys

from cmtoolkit.cli import main

sys.exit(main())
