"""``python -m profiler``: the profiling worker (see :mod:`profiler.worker`)."""

import sys

from profiler.worker import main

sys.exit(main())
