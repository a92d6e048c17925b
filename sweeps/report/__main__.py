"""python -m sweeps.report PATH  (see sweeps/report/report.py)"""

import sys

from sweeps.report.report import main

sys.exit(main())
