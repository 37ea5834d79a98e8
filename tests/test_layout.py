"""The package's layout: no import circle (module-level or inside functions), a solver that knows no
estimator internals, saved models of version 0.1.0 that still load."""

import ast
from pathlib import Path

import numpy as np
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rda_cli"
FIXTURE = Path(__file__).resolve().parent / "data" / "model-0.1.0"


def import_graph():
    """``module -> modules of rda_cli it imports`` (any import statement, also inside functions)."""
    modules = {}
    for f in PACKAGE.rglob("*.py"):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = f
    graph = {}
    for name, f in modules.items():
        package = name if f.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                candidates = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            deps.update(c for c in candidates if c in modules and c != name)
        graph[name] = deps
    return graph


def test_no_import_circle():
    graph = import_graph()
    assert "rda_cli.outputs" in graph["rda_cli.detect"] and "rda_cli.errors" in graph["rda_cli.outputs"]
    state = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for dep in sorted(graph[node]):
            assert state.get(dep) != 1, f"import circle: {' -> '.join(path + [dep])}"
            if dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert graph["rda_cli.errors"] == set()  # the leaf every module may import


def test_solver_uses_no_estimator_internals():
    source = (PACKAGE / "solver.py").read_text()
    tree = ast.parse(source)
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not imported & {"estimator", "scoring", "rda", "persistence"}
    private = {"_prox", "_record", "_converged", "_set_fitted", "_validate_params", "_check_X", "_start",
               "_seed", "_trainer"}
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not used & private, used & private


@pytest.mark.parametrize("name", ["L_", "S_"])
def test_a_model_saved_by_version_0_1_0_loads(name):
    """tests/data/model-0.1.0 was written by RobustAutoencoder.save of version 0.1.0 (l21_rows, one
    missing cell); it loads and scores as it did then (expected.npz, computed by that version)."""
    from rda_cli import RobustAutoencoder

    model = RobustAutoencoder.load(FIXTURE)
    with np.load(FIXTURE.parent / "model-0.1.0-expected.npz") as z:
        np.testing.assert_array_equal(getattr(model, name), z[name])
        np.testing.assert_allclose(model.decision_function(z["X"][:5]), z["decision_function"], rtol=1e-6)
        np.testing.assert_allclose(model.transform(z["X"]), z["transform"], rtol=1e-6, atol=1e-7)
        assert model._is_training_data(z["X"])  # its fingerprint of the training data is read back
