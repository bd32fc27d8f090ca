#!/usr/bin/env python
"""He et al. 2015 figure 6 from history.csv files:
``python scripts/plot_degradation.py runs/*.work/history.csv --output fig6.png``.

The logic lives in keras_resblocks.plotting.
"""

import sys

from keras_resblocks.plotting import main

if __name__ == "__main__":
    sys.exit(main())
