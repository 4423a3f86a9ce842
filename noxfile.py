"""nox sessions. `nox -s matrix` runs the whole version matrix and rewrites docs/matrix.md.

The matrix installs each release set once into `.matrix/` (or $ODIN_MATRIX_DIR) with
`pip install --no-deps --target`; the session venv holds only what every set shares.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["matrix"]
nox.options.reuse_existing_virtualenvs = True

# What every release set shares; the same as CI's venv. torch first: a local CPU build.
SHARED = ("numpy", "packaging", "psutil", "pyyaml", "huggingface_hub==2.4.0", "safetensors", "filelock", "tqdm",
          "jinja2", "typing_extensions", "fsspec", "pytest")  # fmt: skip


@nox.session(python="3.11")
def matrix(session: nox.Session) -> None:
    """Every record: the real crash without odin, the repair with it, identity on the working side."""
    session.install("torch==2.13.0")
    session.install(*SHARED)
    session.install("--no-deps", "-e", ".")
    session.run("pytest", "-m", "matrix", "-p", "no:cacheprovider", "--junitxml=.matrix/junit.xml", *session.posargs,
                success_codes=[0, 1])  # fmt: skip
    session.run("python", "tests/matrix.py", "report", ".matrix/junit.xml", "docs/matrix.md")


@nox.session(python="3.11")
def catalogue(session: nox.Session) -> None:
    """Regenerate docs/catalogue.md from the records."""
    session.install("--no-deps", "-e", ".")
    session.install("packaging")
    session.run("python", "-m", "odin_compat", "catalogue", "-o", "docs/catalogue.md")


@nox.session(python="3.11")
def dist(session: nox.Session) -> None:
    """Build the sdist and the wheel into dist/ and check their metadata."""
    session.install("build", "twine")
    session.run("python", "-m", "build", "--outdir", "dist", ".")
    session.run("sh", "-c", "twine check --strict dist/*", external=True)


@nox.session(python="3.11")
def api_diff(session: nox.Session) -> None:
    """What releases of the past three years offered and today's lack: docs/api-diff.md and its JSON.

    Downloads each release's wheel once (pip download --no-deps) into .api-cache/ and reads it with `ast`.
    `nox -s api_diff -- render` rewrites the markdown from the committed JSON only.
    """
    session.install("pip")
    session.run("python", "tools/api_diff.py", *(session.posargs or ["compute"]))


@nox.session(python="3.11")
def corpus(session: nox.Session) -> None:
    """Old official training scripts, unchanged, on today's releases with and without odin: corpus/results.md.

    `nox -s corpus -- --mirror huggingface/trl=PATH ...` reads the scripts from local git clones
    instead of GitHub.
    """
    session.install("torch==2.13.0")
    session.install("transformers", "trl", "peft", "accelerate", "datasets", "pyyaml", "rich", "safetensors")
    session.install("--no-deps", "-e", ".")
    session.run("python", "corpus/run.py", "fetch", *session.posargs)
    session.run("python", "corpus/run.py", "run")
