"""python -m sweep_report PATH  (see sweep_report/report.py)"""

import sys

from sweep_report.report import main

sys.exit(main())
