"""``python -m pipeline.cli``."""

import os
import sys
from pathlib import Path

from pipeline.cli import main
from pipeline.jobs import EXIT_ENV, record_exit

code = main()
if exit_file := os.environ.get(EXIT_ENV):  # a web job: its work is done, say so now
    record_exit(Path(exit_file), code)
sys.exit(code)
