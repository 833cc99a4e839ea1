"""``python -m airflow_hi_stow.emulator``."""

import sys

from airflow_hi_stow.emulator.cli import main

sys.exit(main())
