"""The layer rule of DESIGN.md: a module imports only from its own layer or below, and
sibling packages on one row do not import each other. The CLI is the only layer-4
package allowed to import everything below it."""

from __future__ import annotations

import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "ebas"

LAYER = {
    "errors": 0, "runtime": 0, "flow": 0, "progress": 0, "units": 0, "testing": 0,
    "storage": 1, "crypto": 1, "chunking": 1,
    "repo": 2,
    "backup": 3, "lifecycle": 3, "catalog": 3, "transfer": 3,
    "verify": 4, "replication": 4,
    "api": 5, "ops": 5, "cli": 6,
}
# siblings on one row that must not import each other
SIBLINGS = [{"storage", "crypto", "chunking"}, {"backup", "lifecycle", "catalog", "transfer"}, {"verify", "replication"}]
# kernel modules that may be shared by anyone
KERNEL = {"errors", "runtime", "flow", "progress", "units"}


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "ebas":  # from ebas import api
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ebas."):
            out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ebas."):
                    out.add(alias.name.split(".")[1])
    return out


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        top = rel.parts[0].removesuffix(".py")
        if top in LAYER:
            yield top, path


@pytest.mark.parametrize("top,path", list(_modules()), ids=lambda v: str(v).split("src/")[-1])
def test_module_respects_layers(top, path):
    for dep in _imports(path):
        if dep == top or dep not in LAYER or dep in KERNEL and top not in KERNEL:
            continue
        assert LAYER[dep] <= LAYER[top], f"{path.name} ({top}) imports ebas.{dep} from a higher layer"
        for row in SIBLINGS:
            assert not (top in row and dep in row and top != dep), f"{path.name}: sibling {top} imports {dep}"


# The CLI is a thin front end over the public API (the "thin-cli" import-linter contract
# in pyproject.toml says the same; this runs with pytest).
CLI_MAY_IMPORT = {"api", "errors", "progress", "units", "cli", "__version__"}


@pytest.mark.parametrize("path", sorted((SRC / "cli").rglob("*.py")), ids=lambda p: p.name)
def test_cli_imports_only_the_api(path):
    extra = _imports(path) - CLI_MAY_IMPORT
    assert not extra, f"{path.name} imports ebas.{', ebas.'.join(sorted(extra))}: go through ebas.api instead"
