"""The package's layers look only down: the import graph of vlm_recipes/, by first-level folder (or module).

Every import statement counts, at module level or inside a function: a function-level import is a dependency too,
only a later one. The layer order is written once, here; a new folder must be placed in it.
"""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parent.parent / "vlm_recipes"

# Lowest first. A unit may import units of its own layer or of layers below it, never above.
LAYERS = [
    {"settings", "paths", "processes"},  # what a config is; where files live; process-group teardown
    {"outputs", "hub"},  # run directories and checkpoints; model cards and Hub pushes
    {"grounding"},  # box conventions and geometry, grounding rows, galleries
    {"models"},  # family records, model sources, loading, merging
    {"data"},  # rows, chat encoding, collators, packing, the image pipeline, stand-ins
    {"evaluation"},  # generation, metrics, benchmarks
    {"training"},  # methods, trainers, batching, preflight checks, the run flow
    {"baselines"},  # CLIP / SigLIP, ViT
    {"captioning"},  # BLIP
    {"tiny"},  # offline tiny checkpoints (their builders train with the code above)
    {"launch"},  # entry points: parse + validate, the recipe mains, the preflight command line
]
ROOT_MODULE = "__init__"  # vlm_recipes/__init__.py: lazy public names, imports nothing at import time


def _unit(module: str) -> str:
    """'vlm_recipes.data.collators' -> 'data'; 'vlm_recipes.paths' -> 'paths'; 'vlm_recipes' -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT_MODULE


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, at module level or inside functions (every import statement)."""
    files = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    modules = set(files)
    graph = {}
    for name, path in files.items():
        package_name = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package_name.split(".")[: len(package_name.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                # `from pkg import submodule` imports the submodule; `from module import name` the module.
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def layer_violations(graph: dict[str, set[str]], layers: list[set[str]]) -> list[str]:
    """Imports that reach a higher layer, and units the layer order does not place."""
    rank = {unit: i for i, units in enumerate(layers) for unit in units}
    problems = []
    for module, deps in sorted(graph.items()):
        unit = _unit(module)
        if unit == ROOT_MODULE:
            continue
        if unit not in rank:
            problems.append(f"{module}: its unit {unit!r} is in no layer (add it to LAYERS)")
            continue
        for dep in sorted(deps):
            target = _unit(dep)
            if target in rank and rank[target] > rank[unit]:
                problems.append(f"{module} imports {dep}: layer {rank[unit]} ({unit}) -> {rank[target]} ({target})")
    return problems


def folder_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles in the graph of units (an edge a -> b when a module of a imports a module of b)."""
    units: dict[str, set[str]] = {}
    for module, deps in graph.items():
        units.setdefault(_unit(module), set()).update(_unit(d) for d in deps if _unit(d) != _unit(module))
    cycles, state = [], {}

    def visit(unit, path):
        state[unit] = 1
        for dep in sorted(units.get(unit, ())):
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[unit] = 2

    for unit in sorted(units):
        if unit not in state:
            visit(unit, [unit])
    return cycles


def module_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(module, path):
        state[module] = 1
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                return path[path.index(dep) :] + [dep]
            if dep not in state:
                found = visit(dep, [*path, dep])
                if found:
                    return found
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module, [module])
            if found:
                return found
    return None


def test_every_import_looks_down_the_layer_order():
    graph = import_graph()
    assert len(graph) > 50
    problems = layer_violations(graph, LAYERS)
    assert not problems, "\n".join(problems)


def test_no_cycle_between_folders_or_modules():
    graph = import_graph()
    assert not folder_cycles(graph), folder_cycles(graph)
    assert module_cycle(graph) is None, " -> ".join(module_cycle(graph))


def test_the_checks_catch_an_upward_import_a_cycle_and_an_unplaced_folder(tmp_path):
    # A literal package: low/ imports high/ inside a function (an upward import and, with high -> low, a cycle), and
    # stray/ is in no layer.
    pkg = tmp_path / "pkg"
    for folder, text in {
        "low": "def f():\n    from ..high import thing\n",
        "high": "from ..low import f\nthing = 1\n",
        "stray": "",
    }.items():
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text(text)
    (pkg / "__init__.py").write_text("")
    graph = import_graph(pkg)
    assert graph["pkg.low"] == {"pkg.high"} and graph["pkg.high"] == {"pkg.low"}
    problems = layer_violations(graph, [{"low"}, {"high"}])
    assert any("pkg.low imports pkg.high: layer 0 (low) -> 1 (high)" in p for p in problems)
    assert any("'stray' is in no layer" in p for p in problems)
    assert folder_cycles(graph) == [["high", "low", "high"]]
    assert module_cycle(graph) == ["pkg.high", "pkg.low", "pkg.high"]
    assert not layer_violations(graph, [{"low", "high", "stray"}])  # one layer: imports inside it are fine


def test_no_module_outside_models_names_a_family():
    """Family behaviour is reached through the family record: no module outside models/ compares a family by
    identity (`is SMOLVLM`) or by name (`family.name == ...`)."""
    from vlm_recipes.models.families import FAMILIES

    records = {f.name.upper() for f in FAMILIES}
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "models":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.endswith("families"):
                found += [f"{path}: imports {a.name}" for a in node.names if a.name in records]
            if isinstance(node, ast.Compare):
                left = ast.unparse(node.left)
                if left.endswith(("family.name", "family")) and any(
                    isinstance(c, ast.Constant) or ast.unparse(c) in records for c in node.comparators
                ):
                    found.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "\n".join(found)


def test_tiny_names_resolve_through_the_registered_source():
    from vlm_recipes.models import sources

    assert "tiny:" in sources.KNOWN_PREFIXES
    import vlm_recipes.tiny  # noqa: F401  (registers the source)

    assert "tiny:" in sources._SOURCES
    assert sources.resolve("org/model") == "org/model"
