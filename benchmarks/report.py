"""Markdown tables from a results JSON written by ``benchmarks/run.py --json``.

``python benchmarks/report.py results.json [more.json ...]`` prints them.
"""

from __future__ import annotations

import json
import math
import sys


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
    keys = ("date", "machine", "cpu", "cpu_count", "accelerator", "backend", "python",
            "keras", "tensorflow", "jax", "numpy", "keras_resblocks", "git_commit", "command",
            "wall_s")
    return "\n".join(f"- {k}: `{meta.get(k)}`" for k in keys if k in meta)


def to_markdown(results, heading_level=3):
    """All sections of one run: environment, tables, skipped parts and notes."""
    h = "#" * heading_level
    out = [f"{h} Run: {results['meta']['backend']} backend, {results['meta']['date']}",
           "", environment(results["meta"]), ""]
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


if __name__ == "__main__":
    for path in sys.argv[1:]:
        with open(path) as f:
            print(to_markdown(json.load(f)))
