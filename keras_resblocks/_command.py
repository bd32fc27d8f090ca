"""What every ``keras-resblocks`` subcommand shares: its errors and the command line it records.

A subcommand's work (``listing.py``, ``inference.py``, ``training/command.py``,
``publish.py``, ``plotting.py``) raises
:class:`CommandError`; :func:`keras_resblocks.cli.main` prints it in one line and exits
with its code.
"""

from __future__ import annotations

import os
import sys


class CommandError(Exception):
    """A failure the command reports in one line, without a traceback (exit code 1)."""

    exit_code = 1


class UsageError(CommandError):
    """Options that do not go together (exit code 2, as argparse's own errors)."""

    exit_code = 2


def printable(text):
    r"""``text`` without control characters other than newlines and tabs, so a model card
    cannot move the cursor, recolour or retitle the user's terminal.

    Example:

    >>> from keras_resblocks._command import printable
    >>> printable("ok\x1b[2J\x1b]0;pwned\x07 fine\n")
    'ok[2J]0;pwned fine\n'
    """
    return "".join(c for c in text if c in "\n\t" or (c.isprintable() and c != "\x7f"))


def command_line(argv=None, program=None):
    """This process's command line as the user would type it, without this machine's paths.

    The program's name loses the directory it was installed in (a virtual
    environment's ``bin``), or is ``program`` when given (for example ``"python
    benchmarks/run.py"``, which ``argv[0]`` cannot say); an absolute path among the
    arguments becomes relative to the working directory when it lies below it, else
    ``.../`` and its last component. The result goes into checkpoint cards, which get
    published.

    Example:

    >>> from keras_resblocks._command import command_line
    >>> command_line(["/home/me/.venv/bin/keras-resblocks", "train", "--output", "my run",
    ...               "--dataset=/home/me/data/cifar.tar.gz"])
    "keras-resblocks train --output 'my run' --dataset=.../cifar.tar.gz"
    """
    import shlex

    argv = list(sys.argv if argv is None else argv)
    if program is None:
        program = os.path.basename(argv[0]) if argv else "keras-resblocks"
        if program == "__main__.py":
            program = "python -m keras_resblocks"
    return " ".join([program] + [shlex.quote(_without_local_path(a)) for a in argv[1:]])


def _without_local_path(arg):
    option, equals, value = arg.partition("=") if arg.startswith("-") else ("", "", arg)
    if not equals:
        option, value = "", arg
    if not os.path.isabs(value):
        return arg
    relative = os.path.relpath(value, os.getcwd())
    if relative != os.pardir and not relative.startswith(os.pardir + os.sep):
        value = relative
    else:
        value = ".../" + os.path.basename(value.rstrip(os.sep)) if value.strip(os.sep) else value
    return option + equals + value
