"""``python -m ops.cli``: the ``callq`` command."""

import sys

from ops.cli.main import main

sys.exit(main())
