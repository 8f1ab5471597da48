"""The library's layers point down only (DESIGN.md §3), read from the source with ``ast``.

core → data → domains → experiments → notebook helpers / reproduce / report. Checked here:
no import cycle, no import of a higher layer, no domain importing another domain, no private
``_name`` imported from another module, few function-level imports and each with its reason,
and no module over 450 lines.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ddmi_lite"

CORE = {"errors", "device", "checks", "io", "presets", "geometry", "fields", "readout", "vae", "schedule", "sampling",
        "diffusion", "unet", "ema", "train", "checkpoint", "distributed", "metrics", "metrics3d", "features", "text",
        "weightgen", "rays", "ldm"}
EXPERIMENTS = {"latent_diffusion", "ablations", "ablation_eval", "ablation_table", "bench", "bench_stages", "viz"}
TOP = {"notebook", "reproduce", "report", "__main__", "__init__"}
LAYERS = ("core", "data", "domains", "experiments", "top")
# the domains: a module of one never imports a module of another
DOMAIN_OF = {"image": "image", "shape": "shape", "shape_geometry": "shape", "shape_attributes": "shape",
             "text_to_shape": "shape", "video": "video", "nerf": "nerf", "nerf_render": "nerf"}
MAX_LINES = 450
MAX_LOCAL_IMPORTS = 10


def layer_of(module: str) -> str:
    parts = module.split(".")[1:] or ["__init__"]  # "ddmi_lite.data.emoji" → ["data", "emoji"]
    if parts[0] == "nets" or parts[0] in CORE:
        return "core"
    if parts[0] in ("data", "domains"):
        return parts[0]
    if parts[0] in EXPERIMENTS:
        return "experiments"
    if parts[0] in TOP:
        return "top"
    raise AssertionError(f"{module} has no layer: add it to tests/test_layers.py (and DESIGN.md §3)")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def resolve(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def scan():
    """Per module: imported ddmi_lite modules, private names imported, function-level imports, line count."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name, source = module_name(path), path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        lines = source.splitlines()
        info = {"path": path, "imports": set(), "private": [], "local": [], "lines": len(lines)}
        scopes = [(n, n.lineno, n.end_lineno) for n in ast.walk(tree)
                  if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if any(a <= node.lineno <= b for _, a, b in scopes):
                above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                reason = "#" in lines[node.lineno - 1] or above.startswith("#")
                info["local"].append((node.lineno, ast.unparse(node), reason))
            if isinstance(node, ast.Import):
                info["imports"] |= {a.name for a in node.names if a.name.startswith("ddmi_lite")}
                continue
            target = resolve(node, name, path.name == "__init__.py")
            if not target.startswith("ddmi_lite"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists() or \
                        (PACKAGE.parent / sub.replace(".", "/")).is_dir():
                    info["imports"].add(sub)  # "from ddmi_lite import fields"
                else:
                    info["imports"].add(target)
                    if alias.name.startswith("_") and not alias.name.endswith("__"):  # dunders are public
                        info["private"].append(f"{alias.name} from {target}")
        modules[name] = info
    return modules


MODULES = scan()


def test_every_module_has_a_layer():
    for name in MODULES:
        layer_of(name)


def test_imports_point_down_only():
    order = {layer: i for i, layer in enumerate(LAYERS)}
    upward = [f"{m} ({layer_of(m)}) imports {t} ({layer_of(t)})"
              for m, info in MODULES.items() for t in sorted(info["imports"])
              if t in MODULES and t != "ddmi_lite" and order[layer_of(t)] > order[layer_of(m)]]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_cycle():
    graph = {m: {t for t in info["imports"] if t in MODULES and t != m} for m, info in MODULES.items()}
    state, stack, cycles = defaultdict(int), [], []

    def visit(m):  # depth-first search; a grey node on the stack closes a cycle
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state[t] == 1:
                cycles.append(" → ".join(stack[stack.index(t):] + [t]))
            elif state[t] == 0:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if state[m] == 0:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_domain_imports_another():
    crossing = []
    for m, info in MODULES.items():
        if layer_of(m) != "domains" or m.count(".") < 2:
            continue
        own = DOMAIN_OF.get(m.split(".")[2])
        assert own is not None, f"{m}: say which domain it belongs to in DOMAIN_OF"
        crossing += [f"{m} imports {t}" for t in info["imports"]
                     if t.startswith("ddmi_lite.domains.") and DOMAIN_OF.get(t.split(".")[2]) != own]
    assert not crossing, "a domain imports another:\n" + "\n".join(crossing)


def test_no_private_name_imported_across_modules():
    private = [f"{m} imports {p}" for m, info in MODULES.items() for p in info["private"]]
    assert not private, "\n".join(private)


def test_function_level_imports_are_few_and_explained():
    local = [(m, line, text, reason) for m, info in MODULES.items() for line, text, reason in info["local"]]
    unexplained = [f"{m}:{line} {text}" for m, line, text, reason in local if not reason]
    assert not unexplained, "function-level imports need a comment saying why:\n" + "\n".join(unexplained)
    assert len(local) <= MAX_LOCAL_IMPORTS, \
        f"{len(local)} function-level imports (at most {MAX_LOCAL_IMPORTS}):\n" + \
        "\n".join(f"{m}:{line} {text}" for m, line, text, _ in local)


def test_modules_are_small():
    big = [f"{m}: {info['lines']} lines" for m, info in MODULES.items() if info["lines"] > MAX_LINES]
    assert not big, f"modules over {MAX_LINES} lines:\n" + "\n".join(big)


@pytest.mark.parametrize("bad, message", [
    ({"ddmi_lite.fields": {"ddmi_lite.domains.image"}}, "upward"),
])
def test_the_checks_can_fail(bad, message, monkeypatch):
    """An upward edge planted in the scan is reported (the test is not vacuous)."""
    planted = {m: dict(info, imports=set(info["imports"]) | bad.get(m, set())) for m, info in MODULES.items()}
    monkeypatch.setattr(__import__(__name__), "MODULES", planted)
    with pytest.raises(AssertionError, match=message):
        test_imports_point_down_only()
