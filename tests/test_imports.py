"""The package's import graph: no cycles, and the checkpoint format imports nothing above it."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "keras_resblocks"
# What reads or writes checkpoints from outside the format: they import the
# checkpoint package, never the reverse.
ABOVE_THE_FORMAT = (
    "keras_resblocks.hub",
    "keras_resblocks.hub_timm",
    "keras_resblocks.publish",
    "keras_resblocks.pretrained",
    "keras_resblocks.port",
    "keras_resblocks.cli",
    "keras_resblocks.training",
    "keras_resblocks.plotting",
    "keras_resblocks.checkpoint",
)


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path, top_level_only):
    """The keras_resblocks modules ``path`` imports (at import time only, or anywhere)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from keras_resblocks import hub` imports the module keras_resblocks.hub
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    return {name for name in found if name in modules}


def _graph(top_level_only):
    return {_module_name(p): _imports(p, top_level_only) for p in PACKAGE.rglob("*.py")}


def _cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for child in sorted(graph.get(node, ())):
            # A package imports its own submodules and they import the package's
            # parent modules; only edges between distinct non-root modules matter.
            if child == "keras_resblocks" or child.startswith(node + "."):
                continue
            if state.get(child) == "open":
                return stack[stack.index(child) :] + [child]
            if child not in state:
                found = visit(child)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycles_even_through_function_level_imports():
    assert _cycle(_graph(top_level_only=False)) is None


def test_the_checkpoint_package_imports_nothing_above_it_even_lazily():
    for module, imports in _graph(top_level_only=False).items():
        if module.startswith("keras_resblocks.checkpoints"):
            upward = sorted(
                name
                for name in imports
                if any(name == m or name.startswith(m + ".") for m in ABOVE_THE_FORMAT)
            )
            assert upward == [], f"{module} imports {upward}"


def test_the_hub_transport_imports_the_format_and_not_the_resolver():
    imports = _graph(top_level_only=True)["keras_resblocks.hub"]
    assert "keras_resblocks.checkpoints.format" in imports
    assert not {"keras_resblocks.pretrained", "keras_resblocks.port"} & imports


def test_the_cycle_check_finds_a_cycle():
    graph = {"keras_resblocks.a": {"keras_resblocks.b"}, "keras_resblocks.b": {"keras_resblocks.a"}}
    assert _cycle(graph) == ["keras_resblocks.a", "keras_resblocks.b", "keras_resblocks.a"]
