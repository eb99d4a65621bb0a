"""`python -m tfjanitor` works like the `tfjanitor` console script."""

import sys

from tfjanitor.cli.main import main

sys.exit(main())
