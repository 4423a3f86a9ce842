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

from odin_compat._stack import SCANNED as TARGETS

_IMPORT_RE = re.compile(
    rb"^[ \t]*(?:from|import)[ \t]+(" + b"|".join(t.encode() for t in TARGETS) + rb")\b", re.M
)
_CATCHES = {"ImportError", "ModuleNotFoundError", "AttributeError", "Exception", "BaseException"}


class Module:
    """What a module defines, read from its source. `names` is None when that cannot be told."""

    def __init__(self, name: str, path: Path | None, package_dir: Path | None) -> None:
        self.name, self.path, self.package_dir = name, path, package_dir
        self.names: set[str] | None = None
        self.dynamic = False  # a module-level __getattr__: absent names may still resolve
        self._children: set[str] | None = None

    def submodule(self, name: str) -> bool:
        if self.package_dir is None:
            return False
        if self._children is None:
            import os

            try:
                entries = os.listdir(self.package_dir)
            except OSError:
                entries = []
            self._children = {e.partition(".")[0] for e in entries if e.endswith((".py", ".so", ".pyd"))}
            self._children |= {e for e in entries if (self.package_dir / e / "__init__.py").exists()}
        return name in self._children


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
                if not source or source in index.resolving:
                    continue  # an import cycle: its names are this module's own
                star = index.module(source)
                if star is None:
                    continue  # no such module (a dummy-objects branch of a lazy package)
                if star.names is None:
                    return  # a star import we cannot read (compiled, dynamic): unknown
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


def resolve(index: Index, module: str, dotted: str) -> tuple[str, str]:
    """Walk `a.b.c` from `module` through submodules; returns (last module, first non-module name)."""
    parts = dotted.split(".")
    for part in parts[:-1]:
        found = index.module(module)
        if found is None or not found.submodule(part):
            return module, part
        module = f"{module}.{part}"
    return module, parts[-1]


def has(index: Index, module_name: str, name: str) -> bool | None:
    """Does `module_name` provide `name`? None: cannot tell (or the module is not there)."""
    module = index.module(module_name)
    if module is None:
        return None
    if module.names is not None and name in module.names:
        return True
    if module.submodule(name):
        return True
    if module.names is None:
        return None
    return None if module.dynamic else False


def _type_checking(test: ast.expr) -> bool:
    return any((isinstance(n, ast.Name) and n.id == "TYPE_CHECKING")
               or (isinstance(n, ast.Attribute) and n.attr == "TYPE_CHECKING") for n in ast.walk(test))  # fmt: skip


def _catches(node: ast.Try) -> bool:
    for handler in node.handlers:
        if handler.type is None:
            return True
        names = {getattr(n, "id", getattr(n, "attr", "")) for n in ast.walk(handler.type)}
        if names & _CATCHES:
            return True
    return False


def _guard_for(node: ast.stmt, field: str, guard: str) -> str:
    if guard == "type-checking":
        return guard
    if isinstance(node, ast.If):
        if field == "body" and _type_checking(node.test):
            return "type-checking"
        return guard or "if"
    if isinstance(node, ast.Try) and field == "body" and _catches(node):
        return guard or "try"
    return guard


def uses(tree: ast.Module, attributes: bool = True) -> list[tuple[int, str, str, str, str]]:
    """(line, module, dotted name, code, guard) for each import from a target, and (with
    `attributes`) each attribute chain on a module alias of a target other than torch."""
    found: list[tuple[int, str, str, str, str]] = []
    aliases: dict[str, str] = {}

    def expr(node: ast.AST, guard: str) -> None:
        if isinstance(node, ast.Attribute):
            chain, cur = [], node
            while isinstance(cur, ast.Attribute):
                chain.append(cur.attr)
                cur = cur.value
            if isinstance(cur, ast.Name) and cur.id in aliases:
                chain.reverse()
                found.append(
                    (node.lineno, aliases[cur.id], ".".join(chain), f"{cur.id}.{'.'.join(chain)}", guard)
                )
                return
            node = cur
        for child in ast.iter_child_nodes(node):
            expr(child, guard)

    def walk(body: list, guard: str) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    top = alias.name.partition(".")[0]
                    if top not in TARGETS:
                        continue
                    if "." in alias.name:
                        parent, _, last = alias.name.rpartition(".")
                        found.append((node.lineno, parent, last, f"import {alias.name}", guard))
                    if top != "torch" and guard != "type-checking":
                        aliases[alias.asname or top] = alias.name if alias.asname else top
                continue
            if isinstance(node, ast.ImportFrom):
                if not node.level and node.module and node.module.partition(".")[0] in TARGETS:
                    for alias in node.names:
                        if alias.name != "*":
                            found.append((node.lineno, node.module, alias.name,
                                          f"from {node.module} import {alias.name}", guard))  # fmt: skip
                continue
            for field, value in ast.iter_fields(node):
                if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                    walk(value, _guard_for(node, field, guard))
                elif isinstance(value, list):
                    for item in value:
                        if isinstance(item, (ast.excepthandler, ast.match_case)):
                            walk(item.body, guard)
                        elif isinstance(item, ast.AST) and attributes and aliases:
                            expr(item, guard)
                elif isinstance(value, ast.AST) and attributes and aliases:
                    expr(value, guard)

    walk(tree.body, "")
    return found


_TORCH_FROM = re.compile(rb"^([ \t]*)from[ \t]+(torch\.[\w.]+)[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]+)", re.M)


def torch_uses(data: bytes) -> list[tuple[int, str, str, str, str]]:
    """`from torch.x import y` statements found without parsing the whole file (files whose only
    target is torch); an indented one is marked "nested" (its context is not known)."""
    found = []
    for m in _TORCH_FROM.finditer(data):
        line = data.count(b"\n", 0, m.start()) + 1
        module = m.group(2).decode()
        names = m.group(3).decode().strip().strip("()").replace("\\", " ")
        for item in names.split(","):
            name = item.split(" as ")[0].strip()
            if name.isidentifier():
                found.append(
                    (line, module, name, f"from {module} import {name}", "nested" if m.group(1) else "")
                )
    return found


def _installed(path: list[str]) -> tuple[list, dict[str, list[str]], dict[str, str]]:
    """The distributions on `path` (the first of each name), their top-level names, their versions."""
    from importlib import metadata

    dists, owners, versions = [], {}, {}
    for dist in metadata.distributions(path=path):
        name = dist.metadata["Name"] or "?"
        if name in versions:
            continue
        versions[name] = dist.version
        dists.append(dist)
        tops = (dist.read_text("top_level.txt") or "").split()
        if not tops:
            tops = {f.parts[0].removesuffix(".py") for f in dist.files or () if f.suffix == ".py" and f.parts}
        for top in tops:
            owners.setdefault(top, []).append(name)
    return dists, owners, versions


def scan(path: list[str] | None = None, include_guarded: bool = False) -> dict:
    """The findings for the environment on `path` (default: this interpreter's sys.path)."""
    import time

    start = time.perf_counter()
    index = Index(path)
    dists, owners, versions = _installed(index.path)
    target_dists = {d for t in TARGETS for d in owners.get(t, [])}
    repairs = _repairs()
    findings, files = [], 0
    for dist in dists:
        name = dist.metadata["Name"] or "?"
        for rel in dist.files or ():
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
            if tops == {"torch"}:
                found = torch_uses(data)
            else:
                try:
                    tree = ast.parse(data, filename=str(file))
                except (SyntaxError, ValueError):
                    continue
                found = uses(tree)
            for line, module, attr, text, guard in found:
                if module.partition(".")[0] not in tops or guard == "type-checking":
                    continue
                module, attr = resolve(index, module, attr)
                if has(index, module, attr) is not False:
                    continue
                owner = owners.get(module.partition(".")[0], ["?"])[0]
                record = repairs.get((module, attr))
                findings.append({
                    "dist": name, "version": dist.version, "file": str(rel), "line": line, "code": text,
                    "module": module, "name": attr,
                    "target": f"{owner} {versions.get(owner, '?')}",
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


def _repairs() -> dict[tuple[str, str], str]:
    """(module, name) -> id of the record that provides it (only names a record adds)."""
    from odin_compat._registry import REGISTRY

    return {(r.module, r.name): r.id for r in REGISTRY.all() if r.kind in ("backport", "alias", "lazy")}


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
