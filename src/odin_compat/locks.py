"""Read the pinned versions of a lock file, without installing anything.

Formats: `uv.lock`, `poetry.lock`, PEP 751 `pylock.toml` (`pylock.*.toml`), and pinned
requirements files (`pip freeze`, `pip-compile`, `uv pip compile` output). TOML needs
`tomllib` (Python >= 3.11) or `tomli`.
"""

from __future__ import annotations

from pathlib import Path


class LockError(ValueError):
    """The file is not a lock this module can read."""


class Lock:
    """Pinned versions by canonical distribution name (a name pinned for several
    resolutions, as uv does per platform, keeps every version)."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path, self.kind = path, kind
        self.pins: dict[str, list[str]] = {}
        self.unpinned: list[str] = []  # requirement lines without an exact version

    def add(self, name: str, version: str) -> None:
        from packaging.utils import canonicalize_name

        versions = self.pins.setdefault(canonicalize_name(name), [])
        if version not in versions:
            versions.append(version)

    def version(self, name: str) -> str | None:
        """The single pinned version of `name` (the first one, where the lock has several)."""
        from packaging.utils import canonicalize_name

        versions = self.pins.get(canonicalize_name(name))
        return versions[0] if versions else None


def _toml(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise LockError(f"{path}: reading TOML on Python 3.10 needs `pip install tomli`") from None
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise LockError(f"{path}: not valid TOML: {exc}") from None


def kind_of(path: Path) -> str:
    """uv, poetry, pylock or requirements, from the file name (then the content, for TOML)."""
    name = path.name.lower()
    if name == "uv.lock":
        return "uv"
    if name == "poetry.lock":
        return "poetry"
    if name == "pylock.toml" or (name.startswith("pylock.") and name.endswith(".toml")):
        return "pylock"
    if name.endswith((".toml", ".lock")):
        data = _toml(path)
        if "packages" in data and "lock-version" in data:
            return "pylock"
        if "metadata" in data and "content-hash" in data.get("metadata", {}):
            return "poetry"
        if "package" in data:
            return "uv"
        raise LockError(f"{path}: unknown lock format (expected uv.lock, poetry.lock or pylock.toml)")
    return "requirements"


def read(path: str | Path) -> Lock:
    """Parse `path` into a Lock. Raises LockError (or OSError) when it cannot."""
    path = Path(path)
    kind = kind_of(path)
    lock = Lock(path, kind)
    if kind == "requirements":
        _requirements(path, lock, seen=set())
    else:
        table = "packages" if kind == "pylock" else "package"
        for entry in _toml(path).get(table, []):
            name, version = entry.get("name"), entry.get("version")
            if name and version:  # pylock entries from a directory or VCS may carry no version
                lock.add(str(name), str(version))
    if not lock.pins:
        raise LockError(f"{path}: no pinned packages found")
    return lock


def _logical_lines(text: str) -> list[str]:
    lines, current = [], ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        lines.append((current + line).strip())
        current = ""
    if current:
        lines.append(current.strip())
    return [line for line in lines if line]


def _requirements(path: Path, lock: Lock, seen: set[Path]) -> None:
    from packaging.requirements import InvalidRequirement, Requirement

    if path.resolve() in seen:
        return
    seen.add(path.resolve())
    for line in _logical_lines(path.read_text(encoding="utf-8")):
        if line.startswith(("-r ", "--requirement ", "-c ", "--constraint ")):
            _requirements(path.parent / line.split(None, 1)[1].strip(), lock, seen)
            continue
        if line.startswith("-"):  # --index-url, --hash on its own, -e (an editable: no version)
            continue
        text = " ".join(part for part in line.split() if not part.startswith("--hash"))
        try:
            req = Requirement(text)
        except InvalidRequirement:
            lock.unpinned.append(line)
            continue
        specs = list(req.specifier)
        if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
            lock.add(req.name, specs[0].version)
        else:
            lock.unpinned.append(line)
