"""The ``keras-resblocks`` command (also ``python -m keras_resblocks``): list, info,
predict, evaluate, verify, train, publish, plot; the package's only command-line program.

Exit codes, for every subcommand: 0 success, 1 the work failed (a bad file, a failed
check, a failed run, a download that failed because the machine is offline or the
server cannot be reached), 2 bad usage, 75 a ``train --deadline`` that stopped before
the end (``--resume`` continues it). Every failure is one ``error: ...`` line on
stderr, never a traceback. A subcommand reports a failure by raising
:class:`CommandError`; :func:`main` alone prints it and picks the exit code.
"""

from __future__ import annotations

import argparse
import os
import sys


from keras_resblocks._cli_common import CommandError, command_line, printable_line

# Each command: (help, the module that holds its options and work, its name there,
# whether it needs the backend). The module is imported only when its command runs or
# its options are built, so --help, list and info load no deep-learning backend.
COMMANDS = {
    "list": ("architectures and pretrained checkpoints", "keras_resblocks.listing", "list", False),
    "info": (
        "the card of a checkpoint or the summary of an architecture",
        "keras_resblocks.listing",
        "info",
        False,
    ),
    "predict": ("top-k labels for image files", "keras_resblocks.inference", "predict", True),
    "evaluate": (
        "top-1 accuracy on an image folder or a dataset",
        "keras_resblocks.inference",
        "evaluate",
        True,
    ),
    "verify": (
        "rerun a checkpoint's reference batch on this backend",
        "keras_resblocks.inference",
        "verify",
        True,
    ),
    "train": (
        "train a model and write a checkpoint",
        "keras_resblocks.training.command",
        "train",
        True,
    ),
    "publish": ("publish a checkpoint to the Hub", "keras_resblocks.publish", "publish", True),
    "plot": (
        "training curves from history files to a PNG",
        "keras_resblocks.plotting",
        "plot",
        True,
    ),
}


def build_parser():
    """The ``keras-resblocks`` argument parser (one sub-command per job).

    Example:

    >>> from keras_resblocks.cli import build_parser
    >>> build_parser().parse_args(["predict", "resnet20_cifar10", "cat.png", "--top-k", "3"]).top_k
    3
    """
    import importlib

    from keras_resblocks import __version__

    parser = argparse.ArgumentParser(
        prog="keras-resblocks",
        description="Residual networks for Keras 3: architectures, pretrained checkpoints, "
        "training and publishing.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the backend's start-up log and full tracebacks (also KERAS_RESBLOCKS_DEBUG=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help, module, function, backend) in COMMANDS.items():
        module = importlib.import_module(module)
        p = sub.add_parser(name, help=help)
        getattr(module, f"add_{function}_arguments")(p)
        p.set_defaults(func=getattr(module, f"run_{function}"), backend=backend)
    return parser


def main(argv=None):
    """Entry point of the ``keras-resblocks`` console script; returns the exit code.

    A failure is one ``error: ...`` line on stderr and exit code 1 (2 for bad
    usage); ``--debug`` (or ``KERAS_RESBLOCKS_DEBUG=1``) shows the traceback and the
    backend's start-up log instead.
    """
    from keras_resblocks._backend import import_backend, quiet_backend_logs
    from keras_resblocks._downloads import download_failure, is_network_error, one_line
    from keras_resblocks._extras import MissingExtraError

    args = build_parser().parse_args(argv)
    # The one record of the command line (checkpoint cards): as typed, or as called.
    args.command_line = command_line(
        sys.argv if argv is None else ["keras-resblocks", *map(str, argv)]
    )
    debug = args.debug or os.environ.get("KERAS_RESBLOCKS_DEBUG", "") not in ("", "0")
    args.debug = debug
    quiet_backend_logs(debug)
    try:
        if getattr(args, "backend", False):
            import_backend(quietly=not debug)
        return args.func(args)
    except (CommandError, MissingExtraError) as e:
        if debug:
            raise
        print(f"error: {printable_line(e)}", file=sys.stderr)
        return getattr(e, "exit_code", 1)
    except (ValueError, OSError, ConnectionError) as e:
        if debug:
            raise
        print(f"error: {type(e).__name__}: {printable_line(one_line(e))}", file=sys.stderr)
        return 1
    except Exception as e:  # keras.utils.get_file raises a bare Exception when offline
        if debug or not is_network_error(e):
            raise
        print(f"error: {printable_line(download_failure('a file', e))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
