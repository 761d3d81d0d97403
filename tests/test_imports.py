"""No import circles between the network modules and the hub (issue 12): each imports alone, in any order, and
the dependency graph among them (from the source's import statements) has no cycle."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

import sdelab

PKG = Path(sdelab.__file__).parent
MODULES = ["embeddings", "nets", "unet", "hub", "classifier", "metrics", "recipes"]


def _imports(name: str) -> set[str]:
    """The sdelab modules that `sdelab.<name>` imports anywhere in its source (top level or inside functions)."""
    tree = ast.parse((PKG / f"{name}.py").read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            out |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sdelab."):
            out.add(node.module.split(".")[1])
    return out & set(MODULES)


def test_the_graph_of_these_modules_has_no_cycle():
    graph = {m: _imports(m) for m in MODULES}
    assert "classifier" not in graph["hub"] and "nets" not in graph["unet"], graph
    state = {}

    def visit(m, path):
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", f"import cycle: {' -> '.join(path + [m])}"
        state[m] = "open"
        for n in graph[m]:
            visit(n, path + [m])
        state[m] = "done"

    for m in MODULES:
        visit(m, [])


# one fresh interpreter per test (importing torch is slow): each module first once, in the orders below
@pytest.mark.parametrize("order", [MODULES[::-1], ["classifier", "unet", "hub", "nets", "embeddings"]])
def test_orders_of_imports_work_in_a_fresh_interpreter(order):
    code = ("import importlib, sys\n"
            f"for m in {order!r}:\n"
            "    importlib.import_module('sdelab.' + m)\n"
            "from sdelab import hub\n"
            "m = hub.build_model({'class': 'MNISTClassifier', 'kwargs': {}})\n"
            "u = hub.build_model({'class': 'UNet', 'kwargs': {'base': 8}})\n"
            "from sdelab.nets import UNet, MLPScore\n"
            "print(type(m).__name__, type(u).__name__, UNet is type(u))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.stdout.split() == ["MNISTClassifier", "UNet", "True"], r.stderr[-2000:]
