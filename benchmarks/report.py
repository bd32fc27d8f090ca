"""Markdown tables from a results JSON written by ``benchmarks/run.py --json``.

    python -m benchmarks.report results.json            # print them
    python -m benchmarks.report results.json --into docs/benchmarks.md --marker cpu-tensorflow
    python -m benchmarks.report results.json --section layers --section loading

``--into`` replaces what lies between ``<!-- results:MARKER -->`` and
``<!-- /results:MARKER -->`` in a document, so published tables are never typed by hand.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from scripts.splice import splice_between


def published(command, tmp):
    """A recorded command with the run's temporary folder ``tmp`` written as ``<tmp>``."""
    return command.replace(str(tmp), "<tmp>")


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == 0:
            return "0"
        if abs(value) < 1e-3:
            return f"{value:.1e}"
        if abs(value) < 10:
            return f"{value:.3f}"
        return f"{value:,.1f}"
    return str(value)


def table(columns, rows):
    """One markdown table; floats get 3 decimals below 10, 1 above."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def environment(meta):
    keys = (
        "date",
        "machine",
        "cpu",
        "cpu_count",
        "accelerator",
        "backend",
        "python",
        "keras",
        "tensorflow",
        "jax",
        "numpy",
        "keras_resblocks",
        "git_commit",
        "command",
        "wall_s",
    )
    return "\n".join(f"- {k}: `{meta.get(k)}`" for k in keys if k in meta)


def to_markdown(results, heading_level=3):
    """All sections of one run: environment, tables, skipped parts and notes."""
    h = "#" * heading_level
    out = [
        f"{h} Run: {results['meta']['backend']} backend, {results['meta']['date']}",
        "",
        environment(results["meta"]),
        "",
    ]
    for name, section in results["sections"].items():
        out.append(f"{h}# {name}")
        out.append("")
        if section["status"] != "ok":
            out += [f"**{section['status']}:** {section['reason']}", ""]
            continue
        for table_name, t in section["tables"].items():
            out += [f"*{table_name}*", "", table(t["columns"], t["rows"]), ""]
        for s in section["skipped"]:
            out.append(f"- **skipped:** {s['what']}: {s['reason']}")
        for note in section["notes"]:
            out.append(f"- {note}")
        out.append("")
    return "\n".join(out)


def splice(document, marker, markdown):
    """``document`` with the text between the ``results:<marker>`` comments replaced."""
    return splice_between(document, f"results:{marker}", markdown)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Markdown tables from results JSON.")
    parser.add_argument("results")
    parser.add_argument("--into", help="a markdown document to splice the tables into")
    parser.add_argument("--marker", help="the results block of --into to replace")
    parser.add_argument(
        "--section",
        action="append",
        help="only this section of the run (repeatable; default: all)",
    )
    args = parser.parse_args(argv)
    results = json.loads(Path(args.results).read_text())
    if args.section:
        missing = sorted(set(args.section) - set(results["sections"]))
        if missing:
            parser.error(
                f"the run has no section {', '.join(missing)}; it has "
                f"{', '.join(results['sections'])}. Received: --section {missing[0]}"
            )
        results["sections"] = {
            name: section for name, section in results["sections"].items() if name in args.section
        }
    # Spliced under a document's own "###" heading, a run's headings go one deeper.
    markdown = to_markdown(results, heading_level=4 if args.into else 3)
    if args.into:
        doc = Path(args.into)
        doc.write_text(splice(doc.read_text(), args.marker, markdown))
    else:
        print(markdown)


if __name__ == "__main__":
    main()
