#!/usr/bin/env python
"""Train a keras-resblocks model: ``python scripts/train.py --help``.

The logic lives in keras_resblocks.training (see docs/training.md).
"""

import sys

from keras_resblocks.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
