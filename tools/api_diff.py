"""What releases of the past three years offered and today's release lacks, for the HF stack.

    python tools/api_diff.py compute   # download wheels (pip download --no-deps), diff, write JSON + markdown
    python tools/api_diff.py render    # markdown from the committed JSON only (no network, no wheels)

Static analysis with the standard library's `ast` of the unpacked wheels (cached under .api-cache/):
nothing is imported, so every release is read on any Python. Per release it records
- public modules (no path component starting with "_", no tests), and per module the public names
  importable from it: definitions, assignments, imports from inside the package (also in `if`/`try`
  blocks, so `if TYPE_CHECKING:` re-exports count), `__all__`, star imports resolved, and lazy exports
  (`_import_structure` tables of transformers/trl/peft, `_SUBMOD_ATTRS` of huggingface_hub);
- fields of the argument dataclasses, inherited ones included (they are also HfArgumentParser flags);
- keywords of the public callables users call, with keywords read from `**kwargs` (`kwargs.pop("x")`)
  and those an upstream `deprecate_kwarg("old", ...)` still accepts.

A finding is something at least one selected older release has and today's release lacks. Classes:
- moved: the name is defined elsewhere in today's package (an alias restores it);
- removed: gone from the package (a backport candidate, from the last release that had it);
- renamed: a field or keyword whose replacement is named in today's source or is the closest new one;
- semantics-gone: TensorFlow / Flax / JAX API (transformers 5 dropped those backends): not repairable.
"""

from __future__ import annotations

import ast
import datetime
import difflib
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".api-cache"
JSON_OUT = ROOT / "src" / "odin_compat" / "data" / "api_diff.json"
MD_OUT = ROOT / "docs" / "api-diff.md"
COMMAND = "python tools/api_diff.py compute  (nox -s api_diff)"

# About one release every six months over three years (the last patch of a minor); the last is today's.
RELEASES: dict[str, tuple[str, ...]] = {
    "transformers": ("4.36.2", "4.41.2", "4.46.3", "4.51.3", "4.57.1", "5.5.4", "5.24.0"),
    "trl": ("0.7.11", "0.8.6", "0.11.4", "0.12.2", "0.15.2", "0.19.1", "0.23.1", "0.29.1", "1.7.1", "1.16.0"),
    "peft": ("0.7.1", "0.10.0", "0.13.2", "0.15.2", "0.17.1", "0.19.1", "0.21.2"),
    "accelerate": ("0.25.0", "0.29.3", "0.34.2", "1.3.0", "1.8.1", "1.12.0", "1.15.0"),
    "huggingface_hub": ("0.20.3", "0.23.5", "0.26.5", "0.30.2", "0.36.0", "1.4.1", "1.20.1", "2.4.0"),
}

# Argument dataclasses: a class name, or a regex over class names of the given module prefixes.
DATACLASSES: dict[str, tuple[str, ...]] = {
    "transformers": ("TrainingArguments", "Seq2SeqTrainingArguments"),
    "trl": (r"re:.*Config$@trl.trainer", "ModelConfig", "ScriptArguments", r"re:.*ScriptArguments$@trl"),
    "peft": (
        "LoraConfig",
        "PeftConfig",
        "PromptTuningConfig",
        "PrefixTuningConfig",
        "IA3Config",
        "LoKrConfig",
    ),
    "accelerate": ("DataLoaderConfiguration", "ProjectConfiguration", "FullyShardedDataParallelPlugin"),
    "huggingface_hub": (),
}

# Public callables users call: "Class.method" or a function name (found anywhere in the package).
CALLABLES: dict[str, tuple[str, ...]] = {
    "transformers": (
        "Trainer.__init__", "Seq2SeqTrainer.__init__", "PreTrainedModel.from_pretrained",
        "PreTrainedModel.save_pretrained", "PreTrainedTokenizerBase.from_pretrained",
        "PretrainedConfig.from_pretrained", "_BaseAutoModelClass.from_pretrained", "AutoTokenizer.from_pretrained",
        "AutoConfig.from_pretrained", "pipeline", "GenerationMixin.generate", "Trainer.train",
        "PreTrainedTokenizerBase.apply_chat_template", "PreTrainedTokenizerBase.__call__",
    ),
    "trl": (
        "SFTTrainer.__init__", "DPOTrainer.__init__", "RewardTrainer.__init__", "KTOTrainer.__init__",
        "ORPOTrainer.__init__", "CPOTrainer.__init__", "PPOTrainer.__init__", "GRPOTrainer.__init__",
        "setup_chat_format", "get_peft_config", "get_quantization_config", "TrlParser.parse_args_and_config",
    ),
    "peft": (
        "get_peft_model", "PeftModel.from_pretrained", "PeftModel.save_pretrained",
        "prepare_model_for_kbit_training", "PeftModel.merge_and_unload", "LoraModel.merge_and_unload",
    ),
    "accelerate": (
        "Accelerator.__init__", "Accelerator.prepare", "Accelerator.unwrap_model", "Accelerator.save_state",
        "Accelerator.load_state", "Accelerator.save_model", "Accelerator.backward", "notebook_launcher",
    ),
    "huggingface_hub": (
        "hf_hub_download", "snapshot_download", "login", "HfApi.upload_folder", "HfApi.create_repo",
        "HfApi.upload_file", "HfApi.__init__",
    ),
}  # fmt: skip

SEMANTICS_GONE = re.compile(
    r"(^|[._])(TF|Flax|tf|flax|jax)([A-Z_.]|$)|^TF|^Flax|_tf_|_flax_|keras|tensorflow"
)


# --- wheels ----------------------------------------------------------------------------------------


def unpacked(lib: str, version: str) -> Path:
    """The unpacked wheel of one release (downloaded once with pip)."""
    folder = CACHE / "unpacked" / f"{lib}-{version}"
    if folder.is_dir():
        return folder
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = sorted(wheels.glob(f"{lib}-{version}-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "-d", str(wheels), f"{lib}=={version}"], check=True)  # fmt: skip
        found = sorted(wheels.glob(f"{lib}-{version}-*.whl"))
    tmp = folder.with_suffix(".tmp")
    with zipfile.ZipFile(found[0]) as whl:
        whl.extractall(tmp, [n for n in whl.namelist() if n.startswith(f"{lib}/")])
    tmp.rename(folder)
    return folder


# --- one release ----------------------------------------------------------------------------------


def _modules(root: Path, lib: str) -> dict[str, Path]:
    out = {}
    for path in sorted((root / lib).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if any(p.startswith(("_", "dummy_")) or p in ("tests", "testing_utils") for p in parts[1:]):
            continue
        out[".".join(parts)] = path
    return out


def _strings(node: ast.AST) -> Iterator[str]:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and sub.value.isidentifier():
            yield sub.value


def _top_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Module-level statements, descending into if/try/with blocks (not functions or classes)."""
    for node in body:
        yield node
        if isinstance(node, ast.If):
            yield from _top_statements(node.body)
            yield from _top_statements(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *[h.body for h in node.handlers]):
                yield from _top_statements(block)
        elif isinstance(node, ast.With):
            yield from _top_statements(node.body)


_LIGHT_DEF = re.compile(
    r"^(?:class|def|async def)\s+([A-Za-z]\w*)|^([A-Za-z]\w*)\s*(?::[^=\n]*)?=(?!=)", re.M
)
_LIGHT_ALL = re.compile(r"^__all__\s*=\s*\[([^\]]*)\]", re.M | re.S)


def _light(lib: str, module: str, path: Path) -> bool:
    """transformers' per-model modules (thousands per release) are read with regular expressions:
    their top-level definitions and `__all__`; parsing them all would take minutes per release."""
    parts = module.split(".")
    return (
        lib == "transformers"
        and len(parts) >= 4
        and parts[1] == "models"
        and parts[2] != "auto"
        and path.name != "__init__.py"
    )


def _light_names(source: str) -> tuple[set[str], set[str] | None]:
    """Public top-level names, and `__all__` if the module has one."""
    names = {a or b for a, b in _LIGHT_DEF.findall(source)}
    blocks = _LIGHT_ALL.findall(source)
    explicit = (
        {n for block in blocks for n in re.findall(r"[\"']([A-Za-z]\w*)[\"']", block)} if blocks else None
    )
    return {n for n in names | (explicit or set()) if not n.startswith("_")}, explicit


def _resolve(module: str, is_pkg: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, target] if target else base)


class Release:
    """Static facts of one unpacked release."""

    def __init__(self, lib: str, version: str, root: Path) -> None:
        self.lib, self.version = lib, version
        self.paths = _modules(root, lib)
        self.defined: dict[str, set[str]] = {}  # name -> modules that define it (class/def/assign)
        self.trees: dict[str, ast.Module] = {}
        self.light: dict[str, set[str]] = {}  # module -> names, read with regular expressions (see _light)
        self._all: dict[str, set[str]] = {}  # module -> its explicit __all__
        for name, path in self.paths.items():
            if _light(lib, name, path):
                self.light[name], explicit = _light_names(path.read_text(encoding="utf-8"))
                if explicit is not None:
                    self._all[name] = explicit
                for n in self.light[name]:
                    self.defined.setdefault(n, set()).add(name)
                continue
            try:
                self.trees[name] = ast.parse(path.read_text(encoding="utf-8"), str(path))
            except (SyntaxError, UnicodeDecodeError):
                continue
        self._names: dict[str, set[str]] = {}
        self.classes: dict[str, tuple[str, ast.ClassDef]] = {}
        self.functions: dict[str, tuple[str, ast.FunctionDef]] = {}
        for mod, tree in self.trees.items():
            for node in _top_statements(tree.body):
                names: list[str] = []
                if isinstance(node, ast.ClassDef):
                    names = [node.name]
                    self._prefer(self.classes, node.name, mod, node)
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names = [node.name]
                    self._prefer(self.functions, node.name, mod, node)
                elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    names = [t.id for t in targets if isinstance(t, ast.Name)]
                for n in names:
                    if not n.startswith("_"):
                        self.defined.setdefault(n, set()).add(mod)

    @staticmethod
    def _prefer(table: dict, name: str, mod: str, node: ast.AST) -> None:
        """Keep the main definition of a name: not experimental or deprecated, then the shortest path."""

        def rank(m: str) -> tuple:
            return ("experimental" in m or "deprecated" in m or "dummy" in m, m.count("."), m)

        if name not in table or rank(mod) < rank(table[name][0]):
            table[name] = (mod, node)

    def names(self, mod: str, _seen: frozenset = frozenset()) -> set[str]:
        """Public names importable from `mod`."""
        if mod in self._names:
            return self._names[mod]
        if mod in self.light:
            return self.light[mod]
        tree = self.trees.get(mod)
        if tree is None or mod in _seen:
            return set()
        seen = _seen | {mod}
        is_pkg = self.paths[mod].name == "__init__.py"
        out: set[str] = set()
        explicit_all: set[str] | None = None
        for node in _top_statements(tree.body):
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                out.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Name):
                        if t.id == "__all__" and node.value is not None:
                            explicit_all = (explicit_all or set()) | set(_strings(node.value))
                        elif t.id in ("_import_structure", "_SUBMOD_ATTRS") and node.value is not None:
                            out.update(self._lazy_values(node.value))
                        else:
                            out.add(t.id)
                    elif isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name):
                        if t.value.id in ("_import_structure", "_SUBMOD_ATTRS") and node.value is not None:
                            out.update(_strings(node.value))
            elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
                func = node.value.func  # _import_structure["x"].extend([...]) / .append("X")
                if isinstance(func, ast.Attribute) and func.attr in ("extend", "append", "update"):
                    owner = func.value.value if isinstance(func.value, ast.Subscript) else func.value
                    if isinstance(owner, ast.Name) and owner.id in (
                        "_import_structure",
                        "_SUBMOD_ATTRS",
                        "__all__",
                    ):
                        for arg in node.value.args:
                            out.update(_strings(arg))
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(mod, is_pkg, node.level, node.module)
                if source.partition(".")[0] != self.lib:
                    continue  # only re-exports from inside the package count
                for alias in node.names:
                    if alias.name == "*":  # a star import takes __all__ where the module has one
                        sub = self.names(source, seen)
                        out.update(self._all.get(source, sub))
                    else:
                        out.add(alias.asname or alias.name)
        if is_pkg:  # submodules are importable attributes-by-import
            prefix = mod + "."
            out.update(
                m[len(prefix) :] for m in self.paths if m.startswith(prefix) and "." not in m[len(prefix) :]
            )
        if explicit_all is not None:
            self._all[mod] = explicit_all
            out |= explicit_all
        result = {n for n in out if not n.startswith("_") and n.isidentifier()}
        if explicit_all is not None and mod != self.lib and not is_pkg:
            # a module with __all__ exports what it lists; other public globals stay importable too
            result |= {n for n in out if not n.startswith("_")}
        self._names[mod] = result
        return result

    @staticmethod
    def _lazy_values(node: ast.AST) -> set[str]:
        if isinstance(node, ast.Dict):
            return {s for v in node.values if v is not None for s in _strings(v)}
        return set()

    # -- dataclass fields and callables --

    def fields(self, cls: str, _depth: int = 0) -> dict[str, str]:
        """Field name -> the class that declares it, inherited fields first."""
        found = self.classes.get(cls)
        if found is None or _depth > 8:
            return {}
        _, node = found
        out: dict[str, str] = {}
        for base in node.bases:
            name = (
                base.id
                if isinstance(base, ast.Name)
                else base.attr
                if isinstance(base, ast.Attribute)
                else None
            )
            if name and name != cls:
                out.update(self.fields(name, _depth + 1))
        for stmt in node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                ann = ast.unparse(stmt.annotation)
                if not stmt.target.id.startswith("_") and "ClassVar" not in ann:
                    out[stmt.target.id] = cls
        return out

    def dataclass_names(self, specs: Iterable[str]) -> list[str]:
        out = []
        for spec in specs:
            if spec.startswith("re:"):
                pattern, _, prefix = spec[3:].partition("@")
                for name, (mod, _) in self.classes.items():
                    if re.fullmatch(pattern, name) and mod.startswith(prefix) and self.fields(name):
                        out.append(name)
            elif spec in self.classes:
                out.append(spec)
        return sorted(set(out))

    def keywords(self, target: str) -> set[str] | None:
        cls, _, meth = target.rpartition(".")
        if cls:
            found = self.classes.get(cls)
            if found is None:
                return None
            func = next((s for s in found[1].body if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)
                         and s.name == meth), None)  # fmt: skip
        else:
            found_f = self.functions.get(meth)
            func = found_f[1] if found_f else None
        if func is None:
            return None
        a = func.args
        out = {p.arg for p in [*a.posonlyargs, *a.args, *a.kwonlyargs] if p.arg not in ("self", "cls")}
        if a.kwarg is not None:
            kw = a.kwarg.arg
            for node in ast.walk(func):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in ("pop", "get") and isinstance(node.func.value, ast.Name)
                        and node.func.value.id == kw and node.args and isinstance(node.args[0], ast.Constant)
                        and isinstance(node.args[0].value, str)):  # fmt: skip
                    out.add(node.args[0].value)
        for deco in func.decorator_list:  # deprecate_kwarg("old", ...) still accepts "old"
            if (
                isinstance(deco, ast.Call)
                and getattr(deco.func, "id", getattr(deco.func, "attr", "")) == "deprecate_kwarg"
            ):
                if deco.args and isinstance(deco.args[0], ast.Constant):
                    out.add(deco.args[0].value)
        return out

    def source_mentions(self, word: str, modules: Iterable[str]) -> bool:
        pattern = re.compile(rf"\b{re.escape(word)}\b")
        return any(
            pattern.search(self.paths[m].read_text(encoding="utf-8")) for m in modules if m in self.paths
        )


def extract(lib: str, version: str) -> dict:
    rel = Release(lib, version, unpacked(lib, version))
    return {
        "modules": sorted(rel.paths),
        "names": {m: sorted(rel.names(m)) for m in sorted(rel.paths)},
        "fields": {c: rel.fields(c) for c in rel.dataclass_names(DATACLASSES[lib])},
        "keywords": {t: sorted(k) for t in CALLABLES[lib] if (k := rel.keywords(t)) is not None},
        "defined": {n: sorted(m) for n, m in sorted(rel.defined.items())},
    }


def facts(lib: str, version: str) -> dict:
    """`extract`, cached as JSON beside the wheels."""
    path = CACHE / "facts" / f"{lib}-{version}.json"
    if path.exists():
        return json.loads(path.read_text())
    data = extract(lib, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return data


# --- the diff --------------------------------------------------------------------------------------


def _gone(*words: str) -> bool:
    return any(SEMANTICS_GONE.search(w) for w in words)


def _legacy_module_aliases(today: Release) -> dict[str, str]:
    """transformers 5 serves some removed module paths from their replacement (_LEGACY_MODULE_ALIASES)."""
    tree = today.trees.get(today.lib)
    out: dict[str, str] = {}
    for node in _top_statements(tree.body if tree else []):
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", "") == "_LEGACY_MODULE_ALIASES" for t in node.targets
        ):
            if isinstance(node.value, ast.Dict):
                for k, v in zip(node.value.keys, node.value.values, strict=False):
                    if isinstance(k, ast.Constant) and isinstance(v, ast.Constant):
                        out[f"{today.lib}.{k.value}"] = f"{today.lib}.{v.value}"
    return out


def _closest(old: str, candidates: Iterable[str]) -> str | None:
    """A new name that likely replaces `old`: a close spelling, or `old` less a prefix (torch_dtype -> dtype)."""
    candidates = sorted(candidates)
    for new in candidates:
        if old.endswith("_" + new):
            return new
    match = difflib.get_close_matches(old, candidates, n=1, cutoff=0.75)
    return match[0] if match else None


def diff(lib: str) -> list[dict]:
    versions = RELEASES[lib]
    now_v = versions[-1]
    now = facts(lib, now_v)
    today = Release(lib, now_v, unpacked(lib, now_v))
    aliases = _legacy_module_aliases(today)
    now_modules = set(now["modules"])
    fast_image = re.compile(r"image_processing_\w+_fast$")
    findings: dict[tuple, dict] = {}

    def add(kind: str, where: str, name: str, version: str, cls: str, target: str = "") -> None:
        key = (kind, where, name)
        row = findings.setdefault(key, {"kind": kind, "where": where, "name": name, "first": version})
        row.update({"last": version, "class": cls, "target": target})

    for version in versions[:-1]:
        old = facts(lib, version)
        old_modules = set(old["modules"])
        for mod in sorted(old_modules - now_modules):
            if mod in aliases or fast_image.sub(r"\g<0>", mod).removesuffix("_fast") in now_modules:
                continue
            if any(mod.startswith(m + ".") for m in old_modules - now_modules if m != mod):
                continue  # inside a removed package: the package is the finding
            # moved: a module of the same name today that still offers at least half of its names
            leaf = mod.rpartition(".")[2]
            had = set(old["names"].get(mod, ()))
            scored = sorted(
                (-len(had & set(now["names"].get(m, ()))) / max(1, len(had)), m)
                for m in now_modules
                if m.rpartition(".")[2] == leaf
            )
            elsewhere = [m for score, m in scored if -score >= 0.5]
            cls = "semantics-gone" if _gone(mod) else "moved" if elsewhere else "removed"
            add("module", mod, "", version, cls, elsewhere[0] if elsewhere else "")
        for mod, names in old["names"].items():
            if mod not in now_modules:
                continue
            missing = set(names) - set(now["names"].get(mod, ()))
            for name in sorted(missing):
                if name in old_modules or f"{mod}.{name}" in old_modules:
                    continue  # a submodule, covered by the module findings
                defined_now = sorted(today.defined.get(name, ()))
                if _gone(name, mod):
                    cls, target = "semantics-gone", ""
                elif defined_now:
                    # prefer the module that defined it in the old release, if it still does
                    same = [m for m in old["defined"].get(name, ()) if m in defined_now]
                    cls, target = "moved", (same or defined_now)[0]
                else:
                    cls, target = "removed", ""
                add("name", mod, name, version, cls, target)
        for dc, old_fields in old["fields"].items():
            now_fields = now["fields"].get(dc)
            if now_fields is None:
                continue  # the class itself is a name finding
            new_only = set(now_fields) - set(old_fields)
            for name in sorted(set(old_fields) - set(now_fields)):
                owner_mod = today.classes.get(dc, ("", None))[0]
                renamed = _closest(name, new_only)
                if _gone(name):
                    cls, target = "semantics-gone", ""
                elif renamed:
                    cls, target = "renamed", renamed
                elif today.source_mentions(name, [owner_mod]):
                    cls, target = "renamed", "(handled or explained in today's source)"
                else:
                    cls, target = "removed", ""
                add("field", dc, name, version, cls, target)
        for target_name, old_kw in old["keywords"].items():
            now_kw = now["keywords"].get(target_name)
            if now_kw is None:
                continue
            new_only = set(now_kw) - set(old_kw)
            for name in sorted(set(old_kw) - set(now_kw)):
                renamed = _closest(name, new_only)
                if _gone(name):
                    cls, tgt = "semantics-gone", ""
                elif renamed:
                    cls, tgt = "renamed", renamed
                else:
                    cls, tgt = "removed", ""
                add("keyword", target_name, name, version, cls, tgt)
    # `last`: the last selected release that had it; `gone_in`: the next selected one (lacks it).
    rows = []
    for row in findings.values():
        row["gone_in"] = versions[versions.index(row["last"]) + 1]
        rows.append(row)
    return sorted(rows, key=lambda r: (r["kind"], r["where"], r["name"]))


# --- outputs ----------------------------------------------------------------------------------------

CLASSES = ("moved", "removed", "renamed", "semantics-gone")
KINDS = ("module", "name", "field", "keyword")
# Modules whose findings the report lists one by one; elsewhere it gives counts per module.
FOCUS = re.compile(
    r"^(transformers|trl|peft|accelerate|huggingface_hub)(\.(trainer\w*|training_args\w*|optimization|"
    r"modeling_utils|tokenization_utils\w*|configuration_utils|data(\.\w+)*|integrations(\.\w+)*|utils(\.\w+)*|"
    r"commands(\.\w+)*|scripts(\.\w+)*|models\.auto(\.\w+)*|generation(\.\w+)*|pipelines|mapping\w*|peft_model|"
    r"tuners(\.\w+)*|accelerator|state|hf_api|file_download|\w+_config|\w+_trainer|core|import_utils))?$"
)


def compute() -> dict:
    libs = {}
    for lib in RELEASES:
        print(f"{lib}: {', '.join(RELEASES[lib])}", file=sys.stderr)
        libs[lib] = {"releases": list(RELEASES[lib]), "findings": diff(lib)}
    out: dict = {
        "generated": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}",
        "command": COMMAND,
        "format": "libraries.<lib>.findings.<kind>.<where> = [[name, class, target, first, last, gone_in], ...]; "
        "first/last (the releases listed that had it) and gone_in (the next one) index libraries.<lib>.releases",
        "libraries": {},
    }
    for lib, v in libs.items():
        grouped: dict[str, dict[str, list]] = {}
        for r in v["findings"]:
            index = v["releases"].index
            row = [
                r["name"],
                r["class"],
                r["target"],
                index(r["first"]),
                index(r["last"]),
                index(r["gone_in"]),
            ]
            grouped.setdefault(r["kind"], {}).setdefault(r["where"], []).append(row)
        out["libraries"][lib] = {"releases": v["releases"], "findings": grouped}
    return out


def rows(data: dict, lib: str) -> list[dict]:
    """The findings of one library as flat dicts (kind, where, name, class, target, first, last, gone_in)."""
    out = []
    releases = data["libraries"][lib]["releases"]
    for kind, by_where in data["libraries"][lib]["findings"].items():
        for where, items in by_where.items():
            for name, cls, target, first, last, gone_in in items:
                out.append({"kind": kind, "where": where, "name": name, "class": cls, "target": target,
                            "first": releases[first], "last": releases[last], "gone_in": releases[gone_in]})  # fmt: skip
    return sorted(out, key=lambda r: (KINDS.index(r["kind"]), r["where"], r["name"]))


def render(data: dict) -> str:
    """The markdown report; a pure function of the JSON."""
    out = [
        "# API diff: what older releases offered and today's lacks",
        "",
        f"Generated {data['generated']} by `{data['command']}` from the wheels of the releases below",
        "(static analysis, nothing imported). Raw data: `src/odin_compat/data/api_diff.json`.",
        "A finding is a public module, a name importable from a public module, a field of an argument",
        "dataclass (also a command-line flag through HfArgumentParser), or a keyword of a public callable,",
        "that some release below had and the last one (today's) lacks.",
        "",
        "- **moved**: defined elsewhere in today's package (target shown): an alias restores it;",
        "- **removed**: gone from the package: a backport candidate (from `last`, the last release listed that had it);",
        "- **renamed**: a field or keyword with a close new name (target shown) or explained in today's source;",
        "- **semantics-gone**: TensorFlow / Flax / JAX API: not repairable.",
        "",
        "| library | releases | "
        + " | ".join(f"{k}: " + "/".join(c[:3] for c in CLASSES) for k in KINDS)
        + " | total |",
        "|---|---|" + "---|" * len(KINDS) + "---|",
    ]
    for lib, lib_data in data["libraries"].items():
        rs = rows(data, lib)
        cells = []
        for kind in KINDS:
            cells.append(
                "/".join(str(sum(r["kind"] == kind and r["class"] == c for r in rs)) for c in CLASSES)
            )
        out.append(f"| {lib} | {', '.join(lib_data['releases'])} | " + " | ".join(cells) + f" | {len(rs)} |")
    out += ["", "Cells: moved/removed/renamed/semantics-gone.", ""]
    for lib in data["libraries"]:
        rs = rows(data, lib)
        out += [f"## {lib}", ""]
        for kind in KINDS:
            shown = [r for r in rs if r["kind"] == kind and r["class"] != "semantics-gone"
                     and (kind in ("field", "keyword") or FOCUS.match(r["where"]))]  # fmt: skip
            rest = [r for r in rs if r["kind"] == kind and r not in shown]
            if not shown and not rest:
                continue
            out += [f"### {kind}s", ""]
            if shown:
                out += ["| where | name | class | target | had it | gone in |", "|---|---|---|---|---|---|"]
                for r in shown:
                    had = r["first"] if r["first"] == r["last"] else f"{r['first']}..{r['last']}"
                    out.append(f"| `{r['where']}` | `{r['name']}` | {r['class']} | {r['target'] or ''} | {had} "
                               f"| {r['gone_in']} |")  # fmt: skip
                out.append("")
            if rest:
                by: dict[tuple[str, str], int] = {}
                for r in rest:
                    key = (r["class"], r["where"] if kind != "module" else r["where"].rsplit(".", 1)[0])
                    by[key] = by.get(key, 0) + 1
                summary = "; ".join(
                    f"{c} {n} in `{w}`" for (c, w), n in sorted(by.items(), key=lambda x: (-x[1], x[0]))[:25]
                )
                more = f"; and {len(by) - 25} more modules" if len(by) > 25 else ""
                out += [f"Not listed ({len(rest)}: semantics-gone, or outside the trainer, argument and top-level "
                        f"modules): {summary}{more}.", ""]  # fmt: skip
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["compute"]:
        data = compute()
        JSON_OUT.parent.mkdir(parents=True, exist_ok=True)
        JSON_OUT.write_text(json.dumps(data, separators=(",", ":")) + "\n", encoding="utf-8")
    elif args[:1] == ["render"]:
        data = json.loads(JSON_OUT.read_text(encoding="utf-8"))
    else:
        raise SystemExit(__doc__)
    MD_OUT.write_text(render(data), encoding="utf-8")
    print(f"{JSON_OUT.relative_to(ROOT)} ({JSON_OUT.stat().st_size // 1024} KiB), {MD_OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
