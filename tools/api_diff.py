"""What releases of the past three years offered and today's release lacks, for the HF stack.

    python tools/api_diff.py compute   # download wheels (pip download --no-deps), diff, write JSON + markdown
    python tools/api_diff.py render    # markdown from the committed JSON only (no network, no wheels)
    python tools/api_diff.py restore   # data of odin's moved / backported / argument records (reads the wheels)
    python tools/api_diff.py coverage  # which in-scope findings odin's records repair, into the JSON + markdown

Static analysis with the standard library's `ast` of the unpacked wheels (cached under .api-cache/):
nothing is imported, so every release is read on any Python. Per release it records
- public modules (no path component starting with "_", no tests, none in a folder without `__init__.py`
  such as example scripts), and per module the public names importable from it: definitions,
  assignments, imports from inside the package (also in `if`/`try` blocks, so `if TYPE_CHECKING:`
  re-exports count), `__all__`, star imports resolved, and lazy exports (`_import_structure` tables of
  transformers/trl/peft, `_SUBMOD_ATTRS` of huggingface_hub);
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
    """Public modules -> their files. A file in a folder below the top package that is not a regular
    package (no `__init__.py`: trl's `commands/scripts/` example scripts the CLI runs by path, kernel
    sources) is no module of the package: neither it nor anything below that folder is API."""
    top = root / lib
    regular: dict[Path, bool] = {}

    def in_packages(folder: Path) -> bool:
        if folder == top:
            return True
        if folder not in regular:
            regular[folder] = (folder / "__init__.py").is_file() and in_packages(folder.parent)
        return regular[folder]

    out = {}
    for path in sorted(top.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if any(p.startswith(("_", "dummy_")) or p in ("tests", "testing_utils") for p in parts[1:]):
            continue
        if not in_packages(path.parent):
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


def render(data: dict, coverage_data: dict | None = None) -> str:
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
    if coverage_data:
        out += render_coverage(coverage_data)
    return "\n".join(out).rstrip() + "\n"


# --- coverage: which in-scope findings odin repairs ---------------------------------------------------

# In scope: the findings of the package top level, the trainer modules and the argument modules of these
# libraries, and every field and keyword finding (argument dataclasses and the callables users call).
COVERAGE_LIBS = ("transformers", "trl", "peft", "accelerate")
SCOPE = re.compile(
    r"^(transformers|trl|peft|accelerate)(\.(trainer\w*|training_args\w*|trainer\.\w+|"
    r"experimental\.\w+\.\w+_(trainer|config)|tuners\.\w+\.config|utils\.dataclasses|accelerator))?$"
)
# The pre-4.41 `<MODEL>_PRETRAINED_CONFIG_ARCHIVE_MAP` / `_MODEL_ARCHIVE_LIST` constants.
ARCHIVE = re.compile(r"PRETRAINED_\w*(ARCHIVE_MAP|ARCHIVE_LIST|_MAP)$|_PRETRAINED_MODEL_ARCHIVE_LIST$")
# Modules a backport may import from: the standard library, torch and numpy (every release needs them).
PLAIN = set(sys.stdlib_module_names) | {"torch", "numpy", "packaging", "typing_extensions"}
STACK = {"transformers", "trl", "peft", "accelerate", "huggingface_hub"}


def in_scope(row: dict) -> bool:
    if row["kind"] in ("field", "keyword"):
        return True
    return bool(SCOPE.match(row["where"]))


class Source:
    """The modules of one unpacked release, parsed on demand (for backports)."""

    _cache: dict[tuple[str, str], Source] = {}

    def __init__(self, lib: str, version: str) -> None:
        self.lib, self.version = lib, version
        self.root = unpacked(lib, version)
        self.paths = {}
        for path in sorted((self.root / lib).rglob("*.py")):
            parts = list(path.relative_to(self.root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            self.paths[".".join(parts)] = path
        self._trees: dict[str, ast.Module | None] = {}
        self._text: dict[str, str] = {}

    @classmethod
    def of(cls, lib: str, version: str) -> Source:
        if (lib, version) not in cls._cache:
            cls._cache[lib, version] = cls(lib, version)
        return cls._cache[lib, version]

    def tree(self, mod: str) -> ast.Module | None:
        if mod not in self._trees:
            path = self.paths.get(mod)
            try:
                self._text[mod] = path.read_text(encoding="utf-8") if path else ""
                self._trees[mod] = ast.parse(self._text[mod]) if path else None
            except (SyntaxError, UnicodeDecodeError):
                self._trees[mod] = None
        return self._trees[mod]

    def segment(self, mod: str, node: ast.stmt) -> str:
        import textwrap

        lines = self._text[mod].splitlines()
        start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])
        return textwrap.dedent("\n".join(lines[start - 1 : node.end_lineno])) + "\n"

    def is_pkg(self, mod: str) -> bool:
        path = self.paths.get(mod)
        return path is not None and path.name == "__init__.py"

    def bindings(self, mod: str) -> dict[str, ast.stmt]:
        """Top-level name -> the statement binding it (the first definition; imports only if nothing else)."""
        tree = self.tree(mod)
        out: dict[str, ast.stmt] = {}
        if tree is None:
            return out
        for node in _top_statements(tree.body):
            names: list[str] = []
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                names = [node.name]
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [t.id for t in targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.Import | ast.ImportFrom):
                for alias in node.names:
                    bound = alias.asname or alias.name.partition(".")[0]
                    if alias.name != "*" and bound not in out:
                        out[bound] = node
                continue
            for n in names:
                prev = out.get(n)
                if prev is None or isinstance(prev, ast.Import | ast.ImportFrom):
                    out[n] = node
        return out

    def locate(self, mod: str, name: str, depth: int = 0) -> tuple[str, str] | None:
        """The module that defines `name` as importable from `mod`, and the name it defines it by."""
        if depth > 6:
            return None
        node = self.bindings(mod).get(name)
        if node is None:
            return None
        if isinstance(node, ast.ImportFrom):
            source = _resolve(mod, self.is_pkg(mod), node.level, node.module)
            alias = next(a for a in node.names if (a.asname or a.name) == name)
            if source.partition(".")[0] != self.lib:
                return None
            found = self.locate(source, alias.name, depth + 1)
            if found is None and f"{source}.{alias.name}" in self.paths:
                return None  # a submodule
            return found
        if isinstance(node, ast.Import):
            return None
        return mod, name


def _free_names(node: ast.AST) -> tuple[set[str], list[ast.ImportFrom | ast.Import]]:
    """Names a statement reads from its module's globals, and the imports inside it."""
    import builtins

    used: set[str] = set()
    bound: set[str] = set()
    inner: list = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            (used if isinstance(sub.ctx, ast.Load) else bound).add(sub.id)
        elif isinstance(sub, ast.arg):
            bound.add(sub.arg)
        elif isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and sub is not node:
            bound.add(sub.name)
        elif isinstance(sub, ast.ExceptHandler) and sub.name:
            bound.add(sub.name)
        elif isinstance(sub, ast.Import | ast.ImportFrom):
            inner.append(sub)
            for alias in sub.names:
                bound.add(alias.asname or alias.name.partition(".")[0])
    own = getattr(node, "name", None)
    return used - bound - set(dir(builtins)) - {own, "__class__", "__name__", "__file__"}, inner


class Today:
    """What today's releases offer (names per module), from their facts."""

    def __init__(self) -> None:
        self.names: dict[str, set[str]] = {}
        self.modules: set[str] = set()
        for lib in STACK:
            data = facts(lib, RELEASES[lib][-1])
            self.modules.update(data["modules"])
            for mod, names in data["names"].items():
                self.names[mod] = set(names)

    def has(self, mod: str, name: str | None = None) -> bool:
        if name is None:
            return mod in self.modules
        return name in self.names.get(mod, ()) or f"{mod}.{name}" in self.modules


def _import_ok(
    src: Source, mod: str, node: ast.Import | ast.ImportFrom, name: str, today: Today
) -> str | None:
    """None when the import that binds `name` works today with only plain modules; else why not."""
    if isinstance(node, ast.Import):
        alias = next(a for a in node.names if (a.asname or a.name.partition(".")[0]) == name)
        root = alias.name.partition(".")[0]
        if root in PLAIN or (root in STACK and today.has(alias.name)):
            return None
        return f"needs `{alias.name}`"
    source = _resolve(mod, src.is_pkg(mod), node.level, node.module)
    root = source.partition(".")[0]
    alias = next((a for a in node.names if (a.asname or a.name) == name), None)
    if alias is None:
        return f"needs `{source}.*`"
    if root in PLAIN:
        return None
    if root in STACK and today.has(source, alias.name):
        return None
    return f"needs `{source}.{alias.name}`" + (" (gone today)" if root in STACK else "")


def backport_bundle(lib: str, where: str, name: str, last: str, today: Today) -> tuple[dict | None, str]:
    """The verbatim source a faithful backport of `where.name` needs (from release `last`), or why none.

    Self-contained: the definition (and each definition of its module it uses that today's release lacks)
    reads only the standard library, torch, numpy, and names today's releases still offer.
    """
    src = Source.of(lib, last)
    found = src.locate(where, name)
    if found is None:
        return None, f"not defined in Python source of {lib} {last} (a submodule, or a dynamic export)"
    mod, real = found
    bindings = src.bindings(mod)
    imports: dict[str, str] = {}
    defs: dict[str, ast.stmt] = {}
    todo = [real]
    while todo:
        current = todo.pop()
        node = bindings.get(current)
        if node is None or current in defs:
            continue
        defs[current] = node
        used, inner = _free_names(node)
        for sub in inner:  # imports inside functions
            if isinstance(sub, ast.ImportFrom):
                source = _resolve(mod, src.is_pkg(mod), sub.level, sub.module)
                root = source.partition(".")[0]
                for alias in sub.names:
                    if root not in PLAIN and not (root in STACK and today.has(source, alias.name)):
                        return None, f"needs `{source}.{alias.name}`" + (
                            " (gone today)" if root in STACK else ""
                        )
                if sub.level:
                    return None, f"a relative import inside `{current}` (from `{source}`)"
            else:
                for alias in sub.names:
                    root = alias.name.partition(".")[0]
                    if root not in PLAIN and not (root in STACK and today.has(alias.name)):
                        return None, f"needs `{alias.name}`"
        for g in sorted(used):
            if g in defs or g in imports:
                continue
            bind = bindings.get(g)
            if bind is None:
                return None, f"reads `{g}`, which {mod} does not bind at top level"
            if isinstance(bind, ast.Import | ast.ImportFrom):
                why = _import_ok(src, mod, bind, g, today)
                if why:
                    return None, why
                if isinstance(bind, ast.Import):
                    alias = next(a for a in bind.names if (a.asname or a.name.partition(".")[0]) == g)
                    imports[g] = f"import {alias.name} as {g}" if alias.asname else f"import {alias.name}"
                else:
                    source = _resolve(mod, src.is_pkg(mod), bind.level, bind.module)
                    alias = next(a for a in bind.names if (a.asname or a.name) == g)
                    imports[g] = f"from {source} import {alias.name} as {g}"
            elif today.has(mod, g) and g != real:
                imports[g] = f"from {mod} import {g}"  # the module still offers it: use today's object
            else:
                todo.append(g)
    order = sorted(defs.values(), key=lambda n: n.lineno)
    code = "\n".join(src.segment(mod, n) for n in order)
    rel = src.paths[mod].relative_to(src.root).as_posix()
    return {
        "imports": sorted(set(imports.values())),
        "code": code,
        "defined_in": mod,
        "defines": real,
        "release": last,
        "link": f"https://github.com/huggingface/{lib}/blob/v{last}/{rel if lib != 'transformers' else 'src/' + rel}",
    }, ""


def _old_field(lib: str, version: str, cls: str, field_name: str) -> dict:
    """Default and annotation of a field of an argument dataclass in one release."""
    src = Source.of(lib, version)
    for mod in src.paths:
        if not re.search(r"(config|args|arguments|dataclasses|utils)\w*$", mod):
            continue
        tree = src.tree(mod)
        if tree is None:
            continue
        for node in _top_statements(tree.body):
            if not isinstance(node, ast.ClassDef) or node.name != cls:
                continue
            for stmt in node.body:
                if isinstance(stmt, ast.AnnAssign) and getattr(stmt.target, "id", None) == field_name:
                    value = stmt.value
                    if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "field":
                        value = next((k.value for k in value.keywords if k.arg == "default"), None)
                    try:
                        default = ast.literal_eval(value) if value is not None else None
                    except ValueError:
                        default = ast.unparse(value)
                    return {"default": default, "annotation": ast.unparse(stmt.annotation)}
            # inherited: look in the bases of this class
            for base in node.bases:
                bname = getattr(base, "id", getattr(base, "attr", None))
                if bname and bname != cls:
                    found = _old_field(lib, version, bname, field_name)
                    if found:
                        return found
    return {}


RESTORE_OUT = ROOT / "src" / "odin_compat" / "data" / "restore.json"
# The backports' source and the not-self-contained reasons: read only when a backport is built (or by
# `coverage`), so the record families register from the small index above.
RESTORE_CODE_OUT = ROOT / "src" / "odin_compat" / "data" / "restore_code.json"


def code_key(row: dict) -> str:
    return f"{row['lib']}:{row['defined_in']}:{row['defines']}"


def write_restore(full: dict) -> None:
    """Split restore()'s result into the index (restore.json) and the source (restore_code.json)."""
    index = {k: v for k, v in full.items() if k != "not_self_contained"}
    code: dict = {"sources": {}, "not_self_contained": full["not_self_contained"]}
    index["backports"] = []
    for row in full["backports"]:
        code["sources"][code_key(row)] = {"code": row["code"], "imports": row["imports"]}
        index["backports"].append({k: v for k, v in row.items() if k not in ("code", "imports")})
    RESTORE_OUT.write_text(json.dumps(index, indent=0, sort_keys=True) + "\n", encoding="utf-8")
    RESTORE_CODE_OUT.write_text(json.dumps(code, indent=0, sort_keys=True) + "\n", encoding="utf-8")


COVERAGE_OUT = ROOT / "docs" / "api-diff-coverage.json"
# Record families driven by restore.json (src/odin_compat/repairs/{moved,backported,arguments}.py).
FAMILIES = ("odin_compat.repairs.moved", "odin_compat.repairs.backported", "odin_compat.repairs.arguments")
ARCHIVE_WHY = (
    "pre-4.41 checkpoint URL tables (`*_PRETRAINED_*_ARCHIVE_MAP/LIST`), only in 4.36.2 of the releases listed: "
    "nothing in today's transformers reads them"
)


def _records(families: bool) -> list:
    sys.path.insert(0, str(ROOT / "src"))
    from odin_compat._records import REGISTRY

    out = []
    for record in REGISTRY.all():
        family = getattr(record.provide, "__module__", "") in FAMILIES
        if family == families or families is None:
            out.append(record)
    return out


def covering(records: list, row: dict) -> list[str]:
    """Ids of the records that repair one finding."""
    kind, where, name = row["kind"], row["where"], row["name"]
    out = []
    for r in records:
        if kind == "name":
            hit = r.module == where and r.name == name
        elif kind == "module":
            hit = f"{r.module}.{r.name}" == where or (
                r.module == where.rpartition(".")[0] and r.name == where.rpartition(".")[2]
            )
        else:
            cls = where.partition(".")[0]
            owners = {cls, "TrainingArguments"} if cls == "Seq2SeqTrainingArguments" else {cls}
            said = f"'{name}'" in r.fixes or f"'--{name}'" in r.fixes or f", '{name}'" in r.fixes
            hit = said and any(o in r.name or o in r.fixes for o in owners)
        if hit:
            out.append(r.id)
    return sorted(out)


# Keyword findings that today's release still takes through **kwargs (no error), called on it by
# tests/test_keywords_today.py: not a break, so no record.
ACCEPTED_TODAY = {
    ("AutoConfig.from_pretrained", "use_auth_token"), ("AutoTokenizer.from_pretrained", "use_auth_token"),
    ("PreTrainedTokenizerBase.from_pretrained", "use_auth_token"),
    ("PreTrainedTokenizerBase.from_pretrained", "resume_download"),
    ("PreTrainedModel.from_pretrained", "_fast_init"), ("PreTrainedModel.from_pretrained", "low_cpu_mem_usage"),
    ("PreTrainedModel.from_pretrained", "mirror"), ("PreTrainedModel.from_pretrained", "offload_state_dict"),
    ("PreTrainedModel.save_pretrained", "safe_serialization"), ("PreTrainedModel.save_pretrained", "save_function"),
    ("PreTrainedModel.save_pretrained", "save_config"), ("PreTrainedModel.save_pretrained", "ignore_metadata_errors"),
    ("GenerationMixin.generate", "num_return_sequences"), ("GenerationMixin.generate", "tokenizer"),
    ("GenerationMixin.generate", "assistant_tokenizer"), ("pipeline", "torch_dtype"), ("pipeline", "_commit_hash"),
    ("pipeline", "code_revision"), ("pipeline", "framework"),
}  # fmt: skip


# Findings whose record failed its proof on today's release (tests/test_restored.py), with why.
UNPROVEN = {
    "transformers:transformers:BaseImageProcessorFast": "today's transformers still resolves it (dynamically)",
    "trl:trl:pack_examples": "the backport's docstring differs from the release's (a decorator)",
    "transformers:transformers.trainer:smp_gather": "defined only when SageMaker model parallelism is installed",
    "transformers:transformers.training_args:default_logdir": "its module imports transformers.training_args "
    "(a circular import at that point)",
    "trl:trl.trainer:GKDConfig": "trl.experimental.gkd does not import at trl.trainer's import",
    "trl:trl.trainer:GKDTrainer": "trl.experimental.gkd does not import at trl.trainer's import",
    "trl:trl:BCOConfig": "today's trl still declares it in its lazy table (an upstream import error, not a removal)",
    "trl:trl.trainer:BCOConfig": "today's trl still declares it in its lazy table",
    "trl:trl:IterativeSFTConfig": "today's trl still declares it in its lazy table",
    "trl:trl.trainer:IterativeSFTConfig": "today's trl still declares it in its lazy table",
    "trl:trl:PRMConfig": "today's trl still declares it in its lazy table",
    "trl:trl.trainer:PRMConfig": "today's trl still declares it in its lazy table",
}


def restore(data: dict) -> dict:
    """restore.json: the moved names, self-contained backports, and removed/renamed fields and keywords
    of the in-scope findings that no hand-written record repairs; and why the other removed names get none."""
    today = Today()
    existing = _records(False)
    out: dict = {"generated": data["generated"], "command": "python tools/api_diff.py restore",
                 "moved": [], "backports": [], "fields": [], "keywords": [], "not_self_contained": {}}  # fmt: skip
    for lib in COVERAGE_LIBS:
        for r in rows(data, lib):
            if not in_scope(r) or r["class"] == "semantics-gone" or covering(existing, r):
                continue
            base = {
                "lib": lib,
                "where": r["where"],
                "name": r["name"],
                "last": r["last"],
                "gone_in": r["gone_in"],
            }
            if f"{lib}:{r['where']}:{r['name']}" in UNPROVEN:
                continue
            if r["kind"] == "name" and r["class"] == "moved":
                out["moved"].append({**base, "target": r["target"]})
            elif r["kind"] == "name" and r["class"] == "removed":
                if ARCHIVE.search(r["name"]):
                    continue
                bundle, why = backport_bundle(lib, r["where"], r["name"], r["last"], today)
                if bundle and bundle["code"].strip():
                    out["backports"].append({**base, **bundle})
                else:
                    out["not_self_contained"][f"{lib}:{r['where']}:{r['name']}"] = why or "no source found"
            elif r["kind"] == "field":
                old = _old_field(lib, r["last"], r["where"], r["name"])
                target = r["target"] if r["class"] == "renamed" and not r["target"].startswith("(") else ""
                out["fields"].append({**base, "target": target, "default": old.get("default"),
                                      "annotation": old.get("annotation", "")})  # fmt: skip
            elif r["kind"] == "keyword":
                target = r["target"] if r["class"] == "renamed" else ""
                out["keywords"].append({**base, "target": target})
    return out


BACKENDS_WHY = "TensorFlow / Flax / JAX API"


def coverage(data: dict, restore_data: dict) -> dict:
    """Per library: every in-scope finding, the records that repair it, or why none does."""
    records = _records(None)
    from odin_compat.explain import GONE_KEYWORDS  # on sys.path since _records()

    nsc = restore_data["not_self_contained"]
    out: dict = {}
    for lib in COVERAGE_LIBS:
        items = []
        for r in rows(data, lib):
            if not in_scope(r):
                continue
            ids = covering(records, r)
            if ids:
                status, detail = "covered", " ".join(ids)
            elif r["kind"] == "keyword" and (r["where"], r["name"]) in ACCEPTED_TODAY:
                status, detail = (
                    "accepted-today",
                    "today's release still takes it (tests/test_keywords_today.py)",
                )
            elif f"{lib}:{r['where']}:{r['name']}" in UNPROVEN:
                status, detail = "not-repaired", UNPROVEN[f"{lib}:{r['where']}:{r['name']}"]
            elif r["class"] == "semantics-gone":
                status, detail = "semantics-gone", BACKENDS_WHY
            elif r["kind"] == "keyword" and (lib, r["where"], r["name"]) in GONE_KEYWORDS:
                status, detail = "semantics-gone", GONE_KEYWORDS[lib, r["where"], r["name"]]
            elif ARCHIVE.search(r["name"]):
                status, detail = "not-repaired", ARCHIVE_WHY
            elif r["kind"] == "module":
                status, detail = (
                    "not-repaired",
                    "a whole module that today's release has no counterpart of (odin_compat.explain names "
                    "the release that removed it)",
                )
            elif f"{lib}:{r['where']}:{r['name']}" in nsc:
                status, detail = "not-self-contained", nsc[f"{lib}:{r['where']}:{r['name']}"]
            else:
                status, detail = "uncovered", "no record"
            items.append([r["kind"], r["where"], r["name"], r["class"], status, detail])
        out[lib] = items
    return out


def render_coverage(cov: dict) -> list[str]:
    out = [
        "## Coverage by odin's records",
        "",
        "In scope: the findings of each package's top level, its trainer modules and its argument modules",
        "(`trainer*`, `training_args*`, `trl.trainer.*`, `*_config`/`*_trainer` of `trl.experimental`,",
        "`peft.tuners.*.config`, `accelerate.utils.dataclasses`, `accelerate.accelerator`), and every field",
        "and keyword finding. A finding is covered when a record repairs it (`docs/catalogue.md`).",
        "Uncovered ones are not repairable: `odin_compat.explain` adds the release that removed them and what",
        "replaced them (from this report's data) to the ImportError / TypeError / AttributeError.",
        "Accepted today: keywords that left a signature but today's release still takes through `**kwargs`",
        "(called on it by `tests/test_keywords_today.py`): not a break.",
        "Semantics gone: the TensorFlow / Flax / JAX API, and keywords whose feature today's release no longer",
        "has (listed below with what replaced it, which `odin_compat.explain` adds to the error).",
        "Uncovered: keywords of callables that no record adapts yet (the same message explains them).",
        "",
        "| library | in scope | covered | accepted today | semantics gone | not self-contained "
        "| not repaired (other) | uncovered |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for lib, items in cov.items():
        count = {s: sum(i[4] == s for i in items) for s in
                 ("covered", "accepted-today", "semantics-gone", "not-self-contained", "not-repaired",
                  "uncovered")}  # fmt: skip
        out.append(f"| {lib} | {len(items)} | {count['covered']} | {count['accepted-today']} | "
                   f"{count['semantics-gone']} | "
                   f"{count['not-self-contained']} | {count['not-repaired']} | {count['uncovered']} |")  # fmt: skip
    out.append("")
    for lib, items in cov.items():
        # listed: all but the covered and the TensorFlow / Flax / JAX API (keywords whose feature is gone are)
        missing = [
            i for i in items if i[4] != "covered" and not (i[4] == "semantics-gone" and i[5] == BACKENDS_WHY)
        ]
        if not missing:
            continue
        out += [f"### {lib}: not covered", ""]
        by: dict[str, list[str]] = {}
        for kind, where, name, _cls, status, detail in missing:
            thing = f"`{where}`" if kind == "module" else f"`{where}.{name}`"
            key = f"{status.replace('-', ' ')}: {detail}"
            by.setdefault(key, []).append(thing)
        for key, things in sorted(by.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            shown = ", ".join(things[:40]) + (f", and {len(things) - 40} more" if len(things) > 40 else "")
            out.append(f"- {key} ({len(things)}): {shown}")
        out.append("")
    return out


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["compute"]:
        data = compute()
        JSON_OUT.parent.mkdir(parents=True, exist_ok=True)
        JSON_OUT.write_text(json.dumps(data, separators=(",", ":")) + "\n", encoding="utf-8")
    elif args[:1] == ["render"]:
        data = json.loads(JSON_OUT.read_text(encoding="utf-8"))
    elif args[:1] == ["restore"]:  # the data of the record families (needs the wheels)
        data = json.loads(JSON_OUT.read_text(encoding="utf-8"))
        write_restore(restore(data))
        print(
            f"{RESTORE_OUT.relative_to(ROOT)} ({RESTORE_OUT.stat().st_size // 1024} KiB), "
            f"{RESTORE_CODE_OUT.relative_to(ROOT)} ({RESTORE_CODE_OUT.stat().st_size // 1024} KiB)"
        )
        return
    elif args[:1] == ["coverage"]:  # which in-scope findings have records (imports odin_compat's records)
        data = json.loads(JSON_OUT.read_text(encoding="utf-8"))
        cov = coverage(data, json.loads(RESTORE_CODE_OUT.read_text(encoding="utf-8")))
        COVERAGE_OUT.write_text(json.dumps(cov, indent=0) + "\n", encoding="utf-8")
    else:
        raise SystemExit(__doc__)
    cov = json.loads(COVERAGE_OUT.read_text(encoding="utf-8")) if COVERAGE_OUT.exists() else None
    MD_OUT.write_text(render(data, cov), encoding="utf-8")
    print(f"{JSON_OUT.relative_to(ROOT)} ({JSON_OUT.stat().st_size // 1024} KiB), {MD_OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
