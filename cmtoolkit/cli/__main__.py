"""``python -m cmtoolkit.cli``: the ``cmtoolkit`` command without its installed script."""

import sys

from cmtoolkit.cli import main

sys.exit(main())
