"""``python -m keras_resblocks``: the ``keras-resblocks`` command."""

import sys

from keras_resblocks.cli import main

sys.exit(main())
