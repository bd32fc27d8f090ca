"""Every code block of the README and docs/ is run by a test, or says why not."""

import re

from tests._docs import ROOT, code_blocks

# Files whose ```python blocks a test runs in order (tests/_docs.run_python_blocks).
PYTHON_RUN_BY = {
    "README.md": "tests/test_docs_readme.py::test_readme_main_job_then_python_blocks",
    "checkpoints.md": "tests/test_docs_checkpoints.py::test_checkpoints_doc_runs",
}
_TEST_REF = re.compile(r"(tests/\w+\.py)::(\w+)")


def _documents():
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _test_exists(file, name):
    path = ROOT / file
    return path.is_file() and re.search(rf"^def {name}\(", path.read_text(), re.MULTILINE)


def test_every_code_block_is_run_by_a_test_or_says_why():
    problems, seen = [], 0
    for path in _documents():
        for lang, code, note in code_blocks(path):
            seen += 1
            where = f"{path.relative_to(ROOT)} block {code.strip().splitlines()[0][:50]!r}"
            if lang == "python" and path.name in PYTHON_RUN_BY:
                note = "run by: " + PYTHON_RUN_BY[path.name]
            if note.startswith("run by:"):
                refs = _TEST_REF.findall(note)
                if not refs:
                    problems.append(f"{where}: 'run by:' names no tests/<file>.py::<test>")
                problems += [
                    f"{where}: no test {f}::{n}" for f, n in refs if not _test_exists(f, n)
                ]
            elif not re.fullmatch(r"not run by tests: .{20,}", note):
                problems.append(
                    f"{where}: needs <!-- run by: tests/...::test_... --> or "
                    "<!-- not run by tests: <why> --> right above it"
                )
    assert seen > 10, seen
    assert not problems, "\n".join(problems)
