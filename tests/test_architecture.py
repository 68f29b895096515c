"""The shape of app/ (docs/architecture.md), checked on the source with ``ast``.

- Imports go down the layers: base modules, auth, invitations, patients, then
  consultation and chat side by side. News that must travel up is an event
  (app/events.py), never an import.
- No import inside a function, except in the factory (``create_app``): a function-level
  import is how a cycle hides.
- No cycle between the units of app/ (a domain package or a base module).
- The media relay is its own process and never imports the web app.

A new package or module in app/ fails here until it has its place in LAYERS.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A unit imports units of its own layer or below; domains that share a
# layer never import each other. Base modules may import each other (without a cycle).
BASE = "base"
LAYERS = [
    (BASE, {"extensions", "events", "hub", "roles", "tariffs", "text", "timeutil", "tokens", "web"}),
    # The operator's legal pages: configuration only, no data of any practice.
    ("legal", {"legal"}),
    ("auth", {"auth"}),
    ("invitations", {"invitations"}),
    ("patients", {"patients"}),
    ("calls and chat", {"consultation", "chat"}),
    # Operations (flask doctor, backup): looks at every part of a running install.
    ("operations", {"ops"}),
]
FACTORY = ("__init__", "create_app")


def layer_of(unit):
    for index, (_, units) in enumerate(LAYERS):
        if unit in units:
            return index
    return None


def modules(package_dir):
    for path in sorted(package_dir.rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def unit_of(path, package_dir):
    """app/patients/services.py -> "patients"; app/web.py -> "web"; app/__init__.py -> "__init__"."""
    parts = path.relative_to(package_dir).with_suffix("").parts
    return parts[0]


def imported_modules(node, path, package_dir, package):
    """Dotted names an Import/ImportFrom node pulls in (relative ones resolved)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        # app/x/y.py and app/x/__init__.py alike: one dot is app.x.
        here = path.relative_to(package_dir.parent).with_suffix("").parts
        base = ".".join(here[:len(here) - node.level] + ((base,) if base else ()))
    # `from app import events`: the names are modules of the package.
    if base == package:
        return [f"{package}.{alias.name}" for alias in node.names]
    return [base]


def app_imports(package_dir):
    """(source unit, target unit, where) for every import of a unit of the package by another."""
    package = package_dir.name
    for path, tree in modules(package_dir):
        source = unit_of(path, package_dir)
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for name in imported_modules(node, path, package_dir, package):
                parts = name.split(".")
                if parts[0] != package or len(parts) < 2:
                    continue
                target = parts[1]
                if target != source:
                    yield source, target, f"{path.relative_to(package_dir.parent)}:{node.lineno}"


def function_level_imports(package_dir):
    """Imports inside a function body, other than in the factory."""
    found = []
    for path, tree in modules(package_dir):
        unit = unit_of(path, package_dir)

        def visit(node, function=None):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                    visit(child, getattr(child, "name", "<lambda>") if function is None else function)
                    continue
                if isinstance(child, (ast.Import, ast.ImportFrom)) and function is not None:
                    if (unit, function) != FACTORY or path.name != "__init__.py" or path.parent != package_dir:
                        found.append(f"{path.relative_to(package_dir.parent)}:{child.lineno}")
                visit(child, function)

        visit(tree)
    return found


def upward_imports(package_dir):
    wrong = []
    for source, target, where in app_imports(package_dir):
        if source == "__init__":
            continue  # the factory assembles everything
        low, high = layer_of(target), layer_of(source)
        if low is None or high is None:
            continue  # unplaced units fail in test_every_unit_has_a_layer
        if low > high or (low == high and LAYERS[low][0] != BASE):
            wrong.append(f"{where}: {source} imports {target}")
    return wrong


def cycles(package_dir):
    graph = {}
    for source, target, _ in app_imports(package_dir):
        if source != "__init__" and target != "__init__":
            graph.setdefault(source, set()).add(target)
    found, state = [], {}

    def visit(unit, stack):
        state[unit] = "open"
        for target in sorted(graph.get(unit, ())):
            if state.get(target) == "open":
                found.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target, stack + [target])
        state[unit] = "done"

    for unit in sorted(graph):
        if unit not in state:
            visit(unit, [unit])
    return found


def units(package_dir):
    return {unit_of(path, package_dir) for path, _ in modules(package_dir)} - {"__init__"}


# -- the app as it is -----------------------------------------------------------------------

APP = ROOT / "app"


def test_every_unit_has_a_layer():
    assert sorted(u for u in units(APP) if layer_of(u) is None) == []


def test_no_function_level_imports_outside_the_factory():
    assert function_level_imports(APP) == []


def test_imports_go_down_the_layers():
    assert upward_imports(APP) == []


def test_no_cycle_between_units():
    assert cycles(APP) == []


def test_the_relay_never_imports_the_web_app():
    relay = ROOT / "media_relay"
    imports = [
        f"{path.name}:{node.lineno}"
        for path, tree in modules(relay)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        and any(name == "app" or name.startswith("app.")
                for name in imported_modules(node, path, relay, "media_relay"))
    ]
    assert imports == []


# -- the checks themselves catch what they are for ----------------------------------------

def _tree(tmp_path, files):
    package = tmp_path / "app"
    for name, source in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return package


@pytest.mark.parametrize("files, expected", [
    ({"patients/services.py": "from app.consultation import calls\n"},
     ["app/patients/services.py:1: patients imports consultation"]),
    ({"patients/services.py": "from app import chat\n"},
     ["app/patients/services.py:1: patients imports chat"]),
    ({"chat/services.py": "import app.consultation.calls\n"},
     ["app/chat/services.py:1: chat imports consultation"]),
    ({"web.py": "from app.auth.models import Staff\n"},
     ["app/web.py:1: web imports auth"]),
    ({"chat/services.py": "from app.patients import links\nfrom app.roles import Role\n"}, []),
])
def test_an_upward_or_sideways_import_is_found(tmp_path, files, expected):
    assert upward_imports(_tree(tmp_path, files)) == expected


def test_a_function_level_import_is_found_but_the_factorys_is_allowed(tmp_path):
    package = _tree(tmp_path, {
        "__init__.py": "def create_app():\n    from app import auth\n\n\ndef helper():\n    import secrets\n",
        "patients/services.py": "def delete():\n    def inner():\n        from app.chat import services\n",
        "web.py": "import os\n",
    })
    assert function_level_imports(package) == ["app/__init__.py:6", "app/patients/services.py:3"]


def test_a_cycle_is_found(tmp_path):
    package = _tree(tmp_path, {
        "web.py": "from app import timeutil\n",
        "timeutil.py": "from app.extensions import db\n",
        "extensions.py": "from app.web import render\n",
    })
    assert cycles(package) == ["extensions -> web -> timeutil -> extensions"]
