"""What every ``keras-resblocks`` subcommand shares: its errors and the command line it records.

A subcommand's work (``listing.py``, ``inference.py``, ``training/command.py``,
``publish.py``, ``plotting.py``) raises
:class:`CommandError`; :func:`keras_resblocks.cli.main` prints it in one line and exits
with its code.
"""

from __future__ import annotations

import os
import shlex
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

    >>> from keras_resblocks._cli_common import printable
    >>> printable("ok\x1b[2J\x1b]0;pwned\x07 fine\n")
    'ok[2J]0;pwned fine\n'
    """
    return "".join(c for c in text if c in "\n\t" or (c.isprintable() and c != "\x7f"))


def printable_line(text):
    r"""``text`` as one printable line: control characters dropped (:func:`printable`),
    newlines and tabs turned into spaces, so a label or file name cannot forge a line.

    Example:

    >>> from keras_resblocks._cli_common import printable_line
    >>> printable_line("cat\ndog: 1.000\x1b[2J")
    'cat dog: 1.000[2J'
    """
    return printable(str(text)).replace("\n", " ").replace("\t", " ")


MAX_BATCH_SIZE = 4096  # images at once: a 224x224 float32 batch of this size is 2.5 GB


def count(low=1, high=None):
    """An argparse ``type``: an integer from ``low`` to ``high``, refused with the range.

    Example:

    >>> from keras_resblocks._cli_common import count
    >>> count(1, 10)("3")
    3
    >>> count(1, 10)("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be an integer from 1 to 10. Received: '0'
    """
    import argparse

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise argparse.ArgumentTypeError(f"must be an integer {span}. Received: {text!r}")
        return value

    return parse


def tolerance(text):
    """An argparse ``type``: a finite number of at least 0.

    Example:

    >>> from keras_resblocks._cli_common import tolerance
    >>> tolerance("nan")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a finite number of at least 0. Received: 'nan'
    """
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"must be a finite number of at least 0. Received: {text!r}"
        )
    return value


def command_line(argv=None, program=None):
    """This process's command line as the user would type it, without this machine's paths.

    The program's name loses the directory it was installed in (a virtual
    environment's ``bin``), or is ``program`` when given (for example ``"python
    benchmarks/run.py"``, which ``argv[0]`` cannot say); an absolute path among the
    arguments becomes relative to the working directory when it lies below it, else
    ``.../`` and its last component. The result goes into checkpoint cards, which get
    published.

    Example:

    >>> from keras_resblocks._cli_common import command_line
    >>> command_line(["/home/me/.venv/bin/keras-resblocks", "train", "--output", "my run",
    ...               "--dataset=/home/me/data/cifar.tar.gz"])
    "keras-resblocks train --output 'my run' --dataset=.../cifar.tar.gz"
    """
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


# Options of a recorded training command that concern only the machine it ran on.
_LOCAL_OPTIONS = {"--work-dir", "--deadline", "--verbose", "--data-note", "--data-cache"}


def reproduction_command(command):
    """A run's recorded command as a user would retype it on their own copy of the data.

    The program becomes ``keras-resblocks``; options that only say where and how this
    run kept its state (``--work-dir``, ``--deadline``, ``--resume``, ``--verbose``,
    ``--data-note``, ``--data-cache``) are left out; the data set and the output keep
    their file names only.

    Example:

    >>> from keras_resblocks._cli_common import reproduction_command
    >>> reproduction_command("python -m keras_resblocks train --model resnet20 --dataset "
    ...              "../data/cifar10-jpeg.tar.gz --work-dir zoo/cifar10/resnet20 --output "
    ...              "weights/resnet20_cifar10 --deadline 2026-12-01T17:49:00 --recipe budget "
    ...              "--data-note 'JPEG copy' --seed 0 --resume")
    'keras-resblocks train --model resnet20 --dataset cifar10-jpeg.tar.gz --output resnet20_cifar10 --recipe budget --seed 0'
    """
    words = shlex.split(command)
    if words[:3] == ["python", "-m", "keras_resblocks"]:  # how the zoo runs the trainer
        words = ["keras-resblocks"] + words[3:]
    elif words[:1] == ["python"] and len(words) > 1 and words[1].startswith("scripts/"):
        words = ["python", "-m", words[1].removesuffix(".py").replace("/", ".")] + words[2:]
    kept, skip = [], False
    for word in words:
        if skip:
            skip = False
            continue
        option = word.split("=", 1)[0]
        if option in _LOCAL_OPTIONS:
            skip = "=" not in word
            continue
        if word == "--resume":
            continue
        if kept and kept[-1] in ("--dataset", "--output"):
            word = os.path.basename(word.rstrip("/"))
        kept.append(word)
    return shlex.join(kept)
