"""``python -m make_us_rich.cli``: the ``mkrich`` command."""

import sys

from make_us_rich.cli import main

sys.exit(main())
