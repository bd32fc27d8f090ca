"""Run the Python code blocks of a Markdown document, so documented examples stay true."""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Where the opt-in (--large) tests find the CIFAR-10 JPEG archive (cifar10-jpeg.tar.gz) and the
# upstream CIFAR weights (pytorch_resnet_cifar10/): KERAS_RESBLOCKS_TEST_DATA, or
# ../shared/data beside the repository by default.
DATA = Path(os.environ.get("KERAS_RESBLOCKS_TEST_DATA", ROOT.parent / "shared" / "data"))
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(path):
    """The ```python fenced blocks of a Markdown file, in order."""
    return _FENCE.findall(Path(path).read_text(encoding="utf-8"))


def run_python_blocks(path, workdir):
    """Execute every ```python block of ``path`` in one namespace, inside ``workdir``.

    Blocks run in order, as a reader would paste them; the namespace is returned
    so a test can check what the example computed.
    """
    blocks = python_blocks(path)
    assert blocks, f"{path} has no ```python blocks"
    namespace = {"__name__": "__main__"}
    previous = os.getcwd()
    os.chdir(workdir)
    try:
        for index, code in enumerate(blocks, start=1):
            exec(compile(code, f"{Path(path).name}[block {index}]", "exec"), namespace)
    finally:
        os.chdir(previous)
    return namespace


_BLOCK = re.compile(
    r"(?:^<!--(?P<note>[^\n]*?)-->[ \t]*\n(?:[ \t]*\n)*)?^```(?P<lang>\w*)[ \t]*\n(?P<code>.*?)^```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


def code_blocks(path):
    """Every fenced block of a Markdown file: ``(language, code, note)``, where
    ``note`` is the text of an HTML comment right above the fence (or ``""``)."""
    text = Path(path).read_text(encoding="utf-8")
    return [(m["lang"], m["code"], (m["note"] or "").strip()) for m in _BLOCK.finditer(text)]
