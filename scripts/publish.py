"""Publish a checkpoint directory to the Hugging Face Hub in one commit.

    python scripts/publish.py DIR --repo-id owner/name [--registry-name resnet20_cifar10]
        [--private] [--revision main] [--dry-run] [--token ...]

Prints the new commit sha on stdout; exits non-zero with a one-line error on
failure. The logic lives in keras_resblocks.publish.
"""

import sys

from keras_resblocks.publish import main

if __name__ == "__main__":
    sys.exit(main())
