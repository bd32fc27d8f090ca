#!/usr/bin/env python
"""The zoo's table, degradation checks and figure from the runs: ``python scripts/zoo_report.py runs/``.

The logic lives in keras_resblocks.zoo_report (see docs/cifar10.md).
"""

import sys

from keras_resblocks.zoo_report import main

if __name__ == "__main__":
    sys.exit(main())
