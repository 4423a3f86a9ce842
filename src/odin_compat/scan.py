"""`odin-compat scan`: which names installed packages import from the HF stack that the installed
stack does not have. Static: it reads source files and imports none of them.

For every installed distribution that imports from a target (accelerate, transformers, trl,
peft, huggingface_hub, torch), each `from X import Y`, `import X.Y` and attribute use `X.Y` on a
module alias is checked against the installed X's source: its definitions, imports, `__all__`,
star imports, submodules and the tables of lazy packages (transformers' `_import_structure`,
huggingface_hub's `_SUBMOD_ATTRS`). A module it cannot read statically (a compiled module, a
dynamic star import) is skipped, as is a name missing from a module with a `__getattr__`:
the scan prefers saying nothing to guessing. Imports under `if TYPE_CHECKING` are ignored; those
inside `try` (catching ImportError or wider) or another `if` are reported as guarded.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

TARGETS = ("accelerate", "transformers", "trl", "peft", "huggingface_hub", "torch")
_IMPORT_RE = re.compile(rb"^[ \t]*(?:from|import)[ \t]+(" + b"|".join(t.encode() for t in TARGETS) + rb")\b", re.M)
_CATCHES = {"ImportError", "ModuleNotFoundError", "AttributeError", "Exception", "BaseException"}


class Module:
    """What a module defines, read from its source. `names` is None when that cannot be told."""

    def __init__(self, name: str, path: Path | None, package_dir: Path | None) -> None:
        self.name, self.path, self.package_dir = name, path, package_dir
        self.names: set[str] | None = None
        self.dynamic = False  # a module-level __getattr__: absent names may still resolve

    def submodule(self, name: str) -> bool:
        d = self.package_dir
        return d is not None and ((d / f"{name}.py").exists() or (d / name / "__init__.py").exists()
                                  or any(d.glob(f"{name}.*.so")) or any(d.glob(f"{name}.*.pyd")))  # fmt: skip


class Index:
    """Resolves modules of the installed targets from sys.path, without importing them."""

    def __init__(self, path: list[str] | None = None) -> None:
        self.path = list(sys.path if path is None else path)
        self.cache: dict[str, Module | None] = {}
        self.resolving: set[str] = set()

    def module(self, name: str) -> Module | None:
        if name in self.cache:
            return self.cache[name]
        self.cache[name] = None
        found = self._locate(name)
        if found is not None:
            self.resolving.add(name)
            try:
                _read(found, self)
            finally:
                self.resolving.discard(name)
        self.cache[name] = found
        return found

    def _locate(self, name: str) -> Module | None:
        top, *rest = name.split(".")
        base = None
        for entry in self.path:
            root = Path(entry or ".")
            if (root / top / "__init__.py").exists() or (root / f"{top}.py").exists():
                base = root
                break
        if base is None:
            return None
        parts = [top, *rest]
        folder = base.joinpath(*parts)
        if (folder / "__init__.py").exists():
            return Module(name, folder / "__init__.py", folder)
        if folder.with_suffix(".py").exists():
            return Module(name, folder.with_suffix(".py"), None)
        if any(folder.parent.glob(f"{parts[-1]}.*.so")) or folder.is_dir():
            return Module(name, None, folder if folder.is_dir() else None)  # compiled or namespace
        return None


def _bound(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, (ast.Tuple, ast.List)):
        return [n for elt in node.elts for n in _bound(elt)]
    if isinstance(node, ast.Starred):
        return _bound(node.value)
    return []


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _top_statements(body: list[ast.stmt]):
    """Module-level statements, entering if/try/with blocks (not functions or classes)."""
    for node in body:
        yield node
        for field in ("body", "orelse", "finalbody"):
            yield from _top_statements(getattr(node, field, []) or [])
        for handler in getattr(node, "handlers", []) or []:
            yield from _top_statements(handler.body)


def _read(module: Module, index: Index) -> None:
    if module.path is None:
        return  # compiled or namespace package: unknown
    try:
        tree = ast.parse(module.path.read_bytes(), filename=str(module.path))
    except (SyntaxError, ValueError, OSError):
        return
    names: set[str] = set()
    lazy = module.package_dir is not None and "_LazyModule" in module.path.read_text("utf-8", "replace")
    for node in _top_statements(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            if node.name == "__getattr__":
                module.dynamic = True
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(_bound(target))
            if any(isinstance(t, ast.Name) and t.id in ("__all__", "_import_structure", "_SUBMOD_ATTRS")
                   for t in node.targets) or lazy:  # fmt: skip
                if isinstance(node.value, (ast.List, ast.Tuple, ast.Dict)):
                    names.update(s for s in _strings(node.value) if s.isidentifier())
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            names.update(_bound(node.target))
            if isinstance(node, ast.AugAssign) and node.value is not None:
                names.update(s for s in _strings(node.value) if s.isidentifier())
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            func = node.value.func  # _import_structure["x"].extend([...]), __all__.append("y")
            if isinstance(func, ast.Attribute) and func.attr in ("extend", "append", "update"):
                names.update(s for s in _strings(node.value) if s.isidentifier())
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names.add(alias.asname or alias.name.partition(".")[0])
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name != "*":
                    names.add(alias.asname or alias.name)
                    continue
                source = _absolute(module, node)
                star = index.module(source) if source and source not in index.resolving else None
                if star is None or star.names is None:
                    return  # a star import we cannot read: unknown
                names.update(n for n in star.names if not n.startswith("_"))
    module.names = names


def _absolute(module: Module, node: ast.ImportFrom) -> str | None:
    if not node.level:
        return node.module
    parts = module.name.split(".")
    if module.package_dir is None:  # a plain module: level 1 is its package
        parts = parts[:-1]
    if node.level > 1:
        parts = parts[: len(parts) - (node.level - 1)]
    if not parts:
        return None
    return ".".join(parts + ([node.module] if node.module else []))


def has(index: Index, module_name: str, name: str) -> bool | None:
    """Does `module_name` provide `name`? None: cannot tell (or the module is not there)."""
    module = index.module(module_name)
    if module is None:
        return None
    if module.submodule(name):
        return True
    if module.names is None:
        return None
    if name in module.names:
        return True
    return None if module.dynamic else False


class _Visitor(ast.NodeVisitor):
    """Collects (line, module, name, guard) for every import or attribute use on a target."""

    def __init__(self) -> None:
        self.uses: list[tuple[int, str, str, str, str]] = []
        self.aliases: dict[str, str] = {}
        self.guards: list[str] = []

    def _guarded(self, node: ast.AST, kind: str, body_fields: tuple[str, ...]) -> None:
        for field in body_fields:
            self.guards.append(kind)
            for child in getattr(node, field, []) or []:
                self.visit(child)
            self.guards.pop()

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        if "TYPE_CHECKING" in ast.dump(node.test):
            self._guarded(node, "type-checking", ("body",))
            self._guarded(node, "if", ("orelse",))
        else:
            self._guarded(node, "if", ("body", "orelse"))

    def visit_Try(self, node: ast.Try) -> None:
        caught = set()
        for handler in node.handlers:
            if handler.type is None:
                caught.add("BaseException")
            else:
                caught.update(_bound(handler.type) + [getattr(n, "attr", "") for n in ast.walk(handler.type)])
        self._guarded(node, "try" if caught & _CATCHES else "", ("body",))
        for part in (*node.handlers, *node.orelse, *node.finalbody):
            self.visit(part)

    visit_TryStar = visit_Try

    def _guard(self) -> str:
        if "type-checking" in self.guards:
            return "type-checking"
        return next((g for g in reversed(self.guards) if g), "")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            top = alias.name.partition(".")[0]
            if top in TARGETS:
                if "." in alias.name:
                    parent, _, last = alias.name.rpartition(".")
                    self.uses.append((node.lineno, parent, last, f"import {alias.name}", self._guard()))
                self.aliases[alias.asname or top] = alias.name if alias.asname else top

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or not node.module or node.module.partition(".")[0] not in TARGETS:
            return
        for alias in node.names:
            if alias.name != "*":
                self.uses.append((node.lineno, node.module, alias.name,
                                  f"from {node.module} import {alias.name}", self._guard()))  # fmt: skip
                self.aliases.setdefault(alias.asname or alias.name, f"{node.module}.{alias.name}?")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain, cur = [], node
        while isinstance(cur, ast.Attribute):
            chain.append(cur.attr)
            cur = cur.value
        if isinstance(cur, ast.Name) and cur.id in self.aliases and not self.aliases[cur.id].endswith("?"):
            module = self.aliases[cur.id]
            chain.reverse()
            self.uses.append((node.lineno, module, chain[0], f"{cur.id}.{'.'.join(chain)}", self._guard()))
            return  # the inner attributes are this chain
        self.generic_visit(node)


def _owner_map() -> dict[str, list[str]]:
    from importlib import metadata

    return metadata.packages_distributions()


def scan(path: list[str] | None = None, include_guarded: bool = False) -> dict:
    """The findings for the environment on `path` (default: this interpreter's sys.path)."""
    import time
    from importlib import metadata

    start = time.perf_counter()
    index = Index(path)
    owners = _owner_map()
    target_dists = {d for t in TARGETS for d in owners.get(t, [])}
    repairs = _repairs()
    findings, files, seen = [], 0, set()
    for dist in metadata.distributions(path=index.path):
        name = dist.metadata["Name"] or "?"
        if name in seen or not dist.files:
            continue
        seen.add(name)
        for rel in dist.files:
            if rel.suffix != ".py":
                continue
            file = Path(str(dist.locate_file(rel)))
            try:
                data = file.read_bytes()
            except OSError:
                continue
            tops = {m.group(1).decode() for m in _IMPORT_RE.finditer(data)}
            tops = {t for t in tops if name not in owners.get(t, [])}  # a package's imports of itself
            if not tops:
                continue
            files += 1
            try:
                tree = ast.parse(data, filename=str(file))
            except (SyntaxError, ValueError):
                continue
            visitor = _Visitor()
            visitor.visit(tree)
            for line, module, attr, text, guard in visitor.uses:
                if module.partition(".")[0] not in tops or guard == "type-checking":
                    continue
                if has(index, module, attr) is not False:
                    continue
                target = module.partition(".")[0]
                record = repairs.get((module, attr))
                findings.append({
                    "dist": name, "version": dist.version, "file": str(rel), "line": line, "code": text,
                    "module": module, "name": attr,
                    "target": f"{'/'.join(owners.get(target, [target]))} {_version(owners.get(target, [target])[0])}",
                    "guarded": guard, "repaired_by": record,
                })  # fmt: skip
    shown = [f for f in findings if include_guarded or not f["guarded"]]
    return {
        "seconds": round(time.perf_counter() - start, 2),
        "files_read": files,
        "importers": sorted({f["dist"] for f in shown}),
        "targets": sorted(target_dists),
        "findings": shown,
        "guarded_hidden": 0 if include_guarded else sum(1 for f in findings if f["guarded"]),
        "repaired": sum(1 for f in shown if f["repaired_by"]),
    }


def _version(dist: str) -> str:
    from odin_compat._records import dist_version

    return dist_version(dist) or "?"


def _repairs() -> dict[tuple[str, str], str]:
    """(module, name) -> id of the record that provides it (only names a record adds)."""
    from odin_compat import _records

    return {(r.module, r.name): r.id for r in _records.REGISTRY.all() if r.kind in ("backport", "alias", "lazy")}


def render(result: dict) -> str:
    out = ["## odin-compat scan", ""]
    out.append(f"- {result['files_read']} files that import from the stack, read in {result['seconds']} s; "
               f"nothing imported")  # fmt: skip
    n = len(result["findings"])
    out.append(f"- {n} names imported that the installed stack lacks; {result['repaired']} repaired by odin"
               + (f"; {result['guarded_hidden']} more inside try/if guards (--all shows them)"
                  if result["guarded_hidden"] else ""))  # fmt: skip
    out.append("")
    for f in result["findings"]:
        fix = f"repaired by odin ({f['repaired_by']})" if f["repaired_by"] else "NOT repaired by odin"
        guard = f" [guarded: {f['guarded']}]" if f["guarded"] else ""
        out.append(f"- {f['dist']} {f['version']}: {f['file']}:{f['line']} `{f['code']}`: "
                   f"{f['module']} ({f['target']}) has no `{f['name']}`; {fix}{guard}")  # fmt: skip
    return "\n".join(out) + "\n"


def main(as_json: bool = False, include_guarded: bool = False) -> int:
    result = scan(include_guarded=include_guarded)
    print(json.dumps(result, indent=2) if as_json else render(result))
    return 0
