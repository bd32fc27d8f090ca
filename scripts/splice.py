"""Generated markdown spliced into a document between two comment markers."""

from __future__ import annotations


def splice_between(document, marker, markdown):
    """``document`` with the text between ``<!-- marker -->`` and ``<!-- /marker -->`` replaced.

    Example:

    >>> from scripts.splice import splice_between
    >>> splice_between("a\\n<!-- zoo:x -->\\nold\\n<!-- /zoo:x -->\\nb", "zoo:x", "new")
    'a\\n<!-- zoo:x -->\\nnew\\n<!-- /zoo:x -->\\nb'
    """
    start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    if start not in document or end not in document:
        raise ValueError(
            f"The document has no {start} ... {end} block. Received: marker={marker!r}"
        )
    head, rest = document.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{markdown}\n{end}{tail}"
