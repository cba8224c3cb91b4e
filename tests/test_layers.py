"""The layers hold: no module of ``gateway``, ``policy`` or ``ui`` imports against the arrows.

The rules are the data below (docs/design.md, "Layers" draws the same picture). Every module is
read with :mod:`ast`, not imported, so every import form counts: ``import a.b``, ``from a import
b`` (where ``b`` may be a module), relative imports, and imports inside functions or under
``if TYPE_CHECKING:`` (a type-only arrow is still an arrow a reader has to follow).
"""

from __future__ import annotations

import ast
import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: the first-party packages whose imports are checked (anything else is a library)
PACKAGES = ("gateway", "policy", "ui")
#: packages that only group layers: they belong to none, so a new module directly inside one
#: must be given a layer, and they import nothing themselves
NAMESPACES = frozenset({"gateway"})


@dataclass(frozen=True, slots=True)
class Layer:
    name: str
    #: module name patterns (fnmatch, so ``gateway.*`` works): a module belongs to the layer
    #: whose pattern names it, or else its closest parent package (:func:`layer_of`)
    modules: tuple[str, ...]
    #: the other layers its modules may import (a layer may always import itself)
    may_import: frozenset[str]
    #: why, for the failure message
    why: str


#: every layer's name (the wiring may import them all)
LAYER_NAMES = frozenset(
    {"store", "policy", "protocol", "instance", "backends", "config", "usecases", "front"}
    | {"ui", "wiring"}
)

#: Listed from the bottom up. The closest match decides: ``policy.store.sqlite`` is in
#: ``store`` (``policy.store``), not in ``policy``.
LAYERS: tuple[Layer, ...] = (
    Layer(
        "store",
        ("policy.store",),
        frozenset(),
        "the metadata stores keep records; they know no policy service (roles are store "
        "vocabulary, re-exported by policy.principal)",
    ),
    Layer(
        "policy",
        ("policy",),
        frozenset({"store"}),
        "policy decides about metadata and never knows who serves it: no gateway, no ui",
    ),
    Layer(
        "protocol",
        ("gateway.protocol",),
        frozenset(),
        "the S3 wire vocabulary is pure: nothing else from the gateway, no policy, no ui",
    ),
    Layer(
        "instance",
        ("gateway.instance",),
        frozenset(),
        "who this process is: a leaf the backends and recovery share",
    ),
    Layer(
        "backends",
        ("gateway.backends",),
        frozenset({"protocol", "instance"}),
        "object stores move bytes and keep S3's object model; they know nothing of policy, "
        "use cases, the S3 front end, the UI or the configuration",
    ),
    Layer(
        "config",
        ("gateway.config",),
        frozenset({"store"}),
        "one process's settings: plain data (it asks policy.store.mongo to hide a URI's "
        "password in messages, nothing else)",
    ),
    Layer(
        "usecases",
        ("gateway.usecases",),
        frozenset({"store", "policy", "protocol", "instance", "backends", "config"}),
        "the one place that talks to both stores; it serves the S3 front end, the UI and the "
        "CLI and imports none of them",
    ),
    Layer(
        "front",
        ("gateway.s3api", "gateway.ui_host"),
        frozenset({"store", "policy", "protocol", "instance", "backends", "config", "usecases"}),
        "the S3 front end serves S3; it does not know the UI (the wiring mounts the UI on its "
        "app) or the CLI",
    ),
    Layer(
        "ui",
        ("ui",),
        frozenset({"store", "policy", "usecases"}),
        "the UI reaches the gateway only through gateway.usecases (app keys, the object store "
        "vocabulary, outages, presigning, the signature check the S3 front end offers)",
    ),
    Layer(
        "wiring",
        ("gateway.server", "gateway.supervisor", "gateway.cli", "gateway.tls"),
        LAYER_NAMES,
        "the server and the CLI put everything together; nothing but the wiring imports them",
    ),
)


#: stand-ins for the source of a module in no layer, and of a namespace package
_NOWHERE = Layer("none", (), frozenset(), "every module belongs to a layer")
_NAMESPACE = Layer("namespace", (), frozenset(), "a namespace package imports nothing")


@dataclass(frozen=True, slots=True)
class Arrow:
    """One import: ``module`` (at ``line``) imports ``target``."""

    module: str
    line: int
    target: str


@dataclass(frozen=True, slots=True)
class Violation:
    arrow: Arrow
    source: Layer
    target: Layer | None

    def __str__(self) -> str:
        a = self.arrow
        if self.source is _NOWHERE:
            return f"{a.module} is in no layer: add it to LAYERS"
        if self.target is None:
            return f"{a.module}:{a.line} imports {a.target}, which is in no layer: add it to LAYERS"
        return (
            f"{a.module}:{a.line} imports {a.target}: "
            f"layer {self.source.name!r} may not import layer {self.target.name!r}"
        )


def explain(found: list[Violation]) -> str:
    """One line per arrow, then each broken layer's rule once."""
    lines = [str(v) for v in found]
    for layer in dict.fromkeys(v.source for v in found if v.target is not None):
        allowed = ", ".join(sorted(layer.may_import | {layer.name}))
        lines.append(f"rule of {layer.name!r}: may import {allowed}, because {layer.why}")
    return "\n".join(lines)


def layer_of(module: str, layers: tuple[Layer, ...] = LAYERS) -> Layer | None:
    """The layer of ``module``: the most specific pattern naming it or a parent package."""
    parts = module.split(".")
    for depth in range(len(parts), 0, -1):
        name = ".".join(parts[:depth])
        if name in NAMESPACES:
            return None
        for layer in layers:
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in layer.modules):
                return layer
    return None


def module_names(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Every module under ``root``'s packages: dotted name -> file (a package by its name)."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from`` import reads from (relative ones resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(module: str, path: Path, known: set[str]) -> Iterator[Arrow]:
    """Every first-party import ``module`` makes, wherever it stands in the file.

    ``from a import b`` is an arrow to ``a.b`` when that is a module, else to ``a``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    seen: set[tuple[int, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, is_package, node)
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in PACKAGES and (node.lineno, target) not in seen:
                seen.add((node.lineno, target))
                yield Arrow(module, node.lineno, target)


def violations(root: Path, layers: tuple[Layer, ...] = LAYERS) -> list[Violation]:
    """Every import under ``root`` that goes against ``layers``."""
    modules = module_names(root)
    known = set(modules)
    found: list[Violation] = []
    for module, path in modules.items():
        source = layer_of(module, layers)
        if module in NAMESPACES:
            source = _NAMESPACE
        elif source is None:
            found.append(Violation(Arrow(module, 0, module), _NOWHERE, None))
            continue
        for arrow in imports_of(module, path, known):
            target = layer_of(arrow.target, layers)
            if target is None:
                found.append(Violation(arrow, source, None))
            elif target.name != source.name and target.name not in source.may_import:
                found.append(Violation(arrow, source, target))
    return found


ROOT = Path(__file__).resolve().parent.parent


def test_every_layer_names_only_known_layers() -> None:
    names = {layer.name for layer in LAYERS}
    assert names == LAYER_NAMES
    for layer in LAYERS:
        assert layer.may_import <= names, layer.name


def test_the_tree_keeps_the_layers() -> None:
    found = violations(ROOT)
    assert not found, "imports against the layers (docs/design.md, Layers):\n" + explain(found)


def test_every_module_is_read() -> None:
    """The checker sees the tree (a wrong root would pass vacuously)."""
    modules = module_names(ROOT)
    assert {"gateway.s3api.app", "policy.enforce", "policy.store.base", "ui.api"} <= set(modules)
    assert all(layer_of(name) is not None for name in set(modules) - NAMESPACES)


# -- the test of the test ------------------------------------------------------------------------
def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    """A small tree with the real package names and no imports yet."""
    _tree(
        tmp_path,
        {
            "gateway/__init__.py": "",
            "gateway/protocol/__init__.py": "",
            "gateway/protocol/errors.py": "",
            "gateway/s3api/__init__.py": "",
            "gateway/s3api/app.py": "",
            "gateway/usecases/__init__.py": "",
            "gateway/usecases/writes.py": "",
            "gateway/cli/__init__.py": "",
            "gateway/cli/session.py": "",
            "policy/__init__.py": "",
            "policy/enforce.py": "",
            "policy/principal.py": "",
            "policy/store/__init__.py": "",
            "policy/store/base.py": "",
            "ui/__init__.py": "",
            "ui/api.py": "",
        },
    )
    return tmp_path


def test_a_forbidden_arrow_is_reported(synthetic: Path) -> None:
    # inside a function, relative, and as "from package import module": all count
    _tree(
        synthetic,
        {
            "ui/api.py": "def handler():\n    from gateway.s3api import app\n",
            "policy/store/base.py": "from .. import principal\n",
            "gateway/protocol/errors.py": "import policy.enforce\n",
            "gateway/usecases/writes.py": "from gateway.cli import session\n",
        },
    )
    found = {(v.arrow.module, v.arrow.line, v.arrow.target) for v in violations(synthetic)}
    assert found == {
        ("ui.api", 2, "gateway.s3api.app"),
        ("policy.store.base", 1, "policy.principal"),
        ("gateway.protocol.errors", 1, "policy.enforce"),
        ("gateway.usecases.writes", 1, "gateway.cli.session"),
    }
    message = explain(violations(synthetic))
    assert "ui.api:2 imports gateway.s3api.app: layer 'ui' may not import layer 'front'" in message
    assert "rule of 'ui': may import policy, store, ui, usecases, because the UI" in message


def test_an_allowed_arrow_is_not_reported(synthetic: Path) -> None:
    _tree(
        synthetic,
        {
            "ui/api.py": "from gateway.usecases.writes import W\nfrom policy import enforce\n",
            "gateway/s3api/app.py": "from ..usecases import writes\nfrom ..protocol import errs\n",
            "policy/enforce.py": "from policy.store.base import MetadataStore\n",
            "gateway/cli/session.py": "import ui.api\nfrom gateway.s3api.app import create_app\n",
        },
    )
    assert violations(synthetic) == []


def test_a_module_in_no_layer_is_reported(synthetic: Path) -> None:
    _tree(synthetic, {"gateway/newthing.py": ""})
    assert [str(v) for v in violations(synthetic)] == [
        "gateway.newthing is in no layer: add it to LAYERS"
    ]
