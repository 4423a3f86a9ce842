"""Run snippets against real released packages, with and without odin_compat.

Each release set is installed once with `pip install --no-deps --target` into a cached folder
under `.matrix/` (or $ODIN_MATRIX_DIR) and put first on PYTHONPATH of a subprocess; the
packages common to everything (torch, numpy, packaging, ...) come from the running venv.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
MATRIX = Path(os.environ.get("ODIN_MATRIX_DIR", ROOT / ".matrix"))

# Pure-Python dependencies of transformers & co. that the test venv need not have.
COMMON = (
    "regex==2026.11.19",
    "requests==2.34.2",
    "urllib3==2.8.0",
    "charset_normalizer==3.5.3",
    "certifi==2026.10.19.post1",
)


# transformers release sets that import with torch 2.13 / numpy 2 / Python 3.11, each with the
# tokenizers and huggingface_hub it was released against.
HUB_0 = "huggingface_hub==0.30.2"
T440 = ("transformers==4.40.2", "tokenizers==0.19.1", HUB_0)
T445 = ("transformers==4.45.2", "tokenizers==0.20.3", HUB_0)
T449 = ("transformers==4.49.0", "tokenizers==0.21.1", HUB_0)
T450 = ("transformers==4.50.3", "tokenizers==0.21.1", HUB_0)
T451 = ("transformers==4.51.3", "tokenizers==0.21.1", HUB_0)
T457 = ("transformers==4.57.1", "tokenizers==0.22.1", "huggingface_hub==0.36.0")
# transformers 5 uses the venv's huggingface_hub (1.x/2.x) and needs typer for its CLI module.
T5 = ("transformers==5.24.0", "tokenizers==0.23.3", "typer==0.29.2", "rich==15.0.0", "shellingham==1.5.4",
      "markdown-it-py==4.3.0", "mdurl==0.1.2")  # fmt: skip

# datasets 3.6 and its dependencies (trl needs it), pinned as one resolution found them.
DATASETS = ("datasets==3.6.0", "dill==0.3.8", "multiprocess==0.70.16", "fsspec==2025.3.0", "xxhash==4.1.0",
            "pyarrow==26.0.1", "pandas==3.1.1", "python_dateutil==4.0.0", "tzdata==2026.6", "aiohttp==3.14.5",
            "aiohappyeyeballs==2.7.1", "aiosignal==1.4.0", "attrs==26.1.0", "frozenlist==1.8.0",
            "multidict==7.2.1", "propcache==0.5.4", "yarl==1.25.1", "rich==15.0.0", "markdown-it-py==4.3.0",
            "mdurl==0.1.2")  # fmt: skip


def common() -> Path:
    return target(*COMMON)


def target(*specs: str) -> Path:
    """The cached folder holding exactly `specs` (pip requirement strings), installed if needed."""
    name = re.sub(r"[^A-Za-z0-9.+_-]", "", "+".join(s.replace("==", "-") for s in specs))
    if len(name) > 120:  # file-name limit: first spec plus a digest of the whole set
        import hashlib

        name = name.partition("+")[0] + "+" + hashlib.sha1(name.encode()).hexdigest()[:12]
    folder = MATRIX / name
    done = folder / ".odin-complete"
    if not done.exists():
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--upgrade",
               "--target", str(folder), *specs]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot install {specs}: {proc.stderr[-500:]}")
        done.write_text("\n".join(specs) + "\n")
    return folder


def run(code: str, *folders: Path, odin: bool) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter with `folders` first on sys.path (then src/)."""
    code = textwrap.dedent(code)
    if odin:
        code = "import odin_compat\n" + code
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HF_", "ODIN_"))}
        env.update(
            PYTHONPATH=os.pathsep.join([*map(str, folders), str(SRC)]),
            PYTHONDONTWRITEBYTECODE="1",
            HF_HOME=home,
            HF_HUB_OFFLINE="1",
            HF_DATASETS_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
            TRANSFORMERS_NO_ADVISORY_WARNINGS="1",
            CUDA_VISIBLE_DEVICES="",
        )
        if not odin:
            env["ODIN_COMPAT_DISABLE"] = "1"  # a startup hook, if installed, must not help
        return subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=home, timeout=600
        )


def breaks(code: str, *folders: Path, error: str) -> None:
    """Without odin, `code` dies with the exact `error` text (the real crash)."""
    proc = run(code, *folders, odin=False)
    assert proc.returncode != 0, f"expected the real crash, but it ran:\n{proc.stdout}\n{proc.stderr}"
    assert error in proc.stderr, f"expected {error!r} in:\n{proc.stderr[-3000:]}"


def works(code: str, *folders: Path) -> str:
    """With `import odin_compat` first, `code` runs to the end; returns its stdout."""
    proc = run(code, *folders, odin=True)
    assert proc.returncode == 0, f"still fails with odin:\n{proc.stderr[-3000:]}"
    return proc.stdout


def untouched(code: str, *folders: Path) -> str:
    """Working side: with odin imported, `code` (which asserts upstream identity) passes, and
    odin decided on the record and skipped it. `code` sets `RECORD` to the record id (or a tuple of ids)."""
    check = textwrap.dedent(code) + textwrap.dedent(
        """
        import odin_compat
        for _id in (RECORD,) if isinstance(RECORD, str) else RECORD:
            _mine = [o for o in odin_compat.report()["outcomes"] if o["id"] == _id]
            assert _mine and all(o["status"] == "skipped" for o in _mine), (_id, _mine)
        """
    )
    return works(check, *folders)


# --- docs/matrix.md from a junit XML of `pytest -m matrix` ------------------------------------

# Which tests prove which record (a test id prefix per record: file::function).
PROVES: dict[str, tuple[str, ...]] = {
    "accelerate-unwrap-model-keep-torch-compile": ("test_repairs_accelerate::test_unwrap_model",),
    "accelerate-clear-device-cache": ("test_repairs_accelerate::test_clear_device_cache",),
    "accelerate-dataloader-args": ("test_repairs_accelerate::test_dataloader_args",),
    "accelerate-is-tpu-available": (
        "test_repairs_accelerate::test_is_tpu_available_breaks",
        "test_repairs_accelerate::test_is_tpu_available_backport_untouched",
    ),
    "accelerate-utils-is-tpu-available": (
        "test_repairs_accelerate::test_is_tpu_available_breaks",
        "test_repairs_accelerate::test_is_tpu_available_untouched_on_0_27",
    ),
    "accelerate-fp8backendtype": ("test_fp8_releases::",),
    "accelerate-utils-fp8backendtype": ("test_fp8_releases::test_identity",),
    "transformers-adamw": ("test_repairs_transformers::test_adamw",),
    "transformers-adamw-export": ("test_repairs_transformers::test_adamw",),
    "transformers-evaluation-strategy": ("test_repairs_transformers::test_evaluation_strategy",),
    "transformers-eval-strategy-old": ("test_repairs_transformers::test_eval_strategy",),
    "transformers-trainer-tokenizer": (
        "test_repairs_transformers::test_trainer_tokenizer_breaks",
        "test_repairs_transformers::test_trainer_tokenizer_untouched",
    ),
    "transformers-trainer-processing-class": (
        "test_repairs_transformers::test_trainer_processing_class",
        "test_repairs_transformers::test_trainer_tokenizer_untouched",
    ),
    "transformers-override-compute-loss": (
        "test_repairs_transformers::test_compute_loss",
        "test_repairs_transformers::test_overrides_untouched",
    ),
    "transformers-override-training-step": (
        "test_repairs_transformers::test_training_step",
        "test_repairs_transformers::test_overrides_untouched",
    ),
    "transformers-override-get-batch-samples": (
        "test_repairs_transformers::test_get_batch_samples",
        "test_repairs_transformers::test_overrides_untouched",
    ),
    "transformers-is-torch-tpu-available": ("test_repairs_transformers::test_is_torch_tpu_available",),
    "transformers-utils-is-torch-tpu-available": ("test_repairs_transformers::test_is_torch_tpu_available",),
    "transformers-is-torch-tpu-available-export": ("test_repairs_transformers::test_is_torch_tpu_available",),
    "transformers-rng-state-weights-only": ("test_repairs_transformers::test_rng_state",),
    "transformers-warmup-ratio": ("test_repairs_transformers::test_warmup_ratio",),
    "transformers-overwrite-output-dir": (
        "test_repairs_transformers::test_overwrite_output_dir",
        "test_repairs_transformers::test_warmup_ratio",
    ),
    "transformers-group-by-length": ("test_repairs_transformers::test_group_by_length",),
    "transformers-include-inputs-for-metrics": ("test_repairs_transformers::test_group_by_length",),
    "transformers-no-cuda": ("test_repairs_transformers::test_no_cuda",),
    "transformers-trainer-tokenizer-attribute": (
        "test_repairs_transformers::test_trainer_tokenizer_attribute",
    ),
    "trl-sfttrainer-tokenizer": ("test_repairs_trl::test_sfttrainer_tokenizer",),
    "trl-sfttrainer-processing-class": (
        "test_repairs_trl::test_sfttrainer_processing_class",
        "test_repairs_trl::test_sfttrainer_tokenizer_untouched",
    ),
    "trl-sfttrainer-config-args": ("test_repairs_trl::test_sfttrainer_config_args",),
    "trl-sftconfig-max-seq-length": ("test_repairs_trl::test_sftconfig_max_seq_length",),
    "trl-completion-only-collator": ("test_repairs_trl::test_completion_only_collator",),
    "trl-trainer-completion-only-collator-export": ("test_repairs_trl::test_completion_only_collator",),
    "trl-completion-only-collator-export": ("test_repairs_trl::test_completion_only_collator",),
    "peft-prepare-model-for-int8-training": ("test_repairs_peft::test_int8_training",),
    "peft-utils-prepare-model-for-int8-training-export": ("test_repairs_peft::test_int8_training",),
    "peft-prepare-model-for-int8-training-export": ("test_repairs_peft::test_int8_training",),
    "huggingface-hub-hffolder": ("test_repairs_huggingface_hub::test_hffolder",),
    "trl-get-kbit-device-map": ("test_repairs_trl::test_get_kbit_device_map",),
    "trl-trainer-get-kbit-device-map-export": ("test_repairs_trl::test_get_kbit_device_map",),
    "trl-get-kbit-device-map-export": ("test_repairs_trl::test_get_kbit_device_map",),
    "trl-setup-chat-format": ("test_repairs_trl::test_setup_chat_format",),
    "trl-models-setup-chat-format-export": ("test_repairs_trl::test_setup_chat_format",),
    "trl-setup-chat-format-export": ("test_repairs_trl::test_setup_chat_format",),
    "trl-orpoconfig-export": ("test_repairs_trl::test_orpo_cpo_exports",),
    "trl-orpotrainer-export": ("test_repairs_trl::test_orpo_cpo_exports",),
    "trl-cpoconfig-export": ("test_repairs_trl::test_orpo_cpo_exports",),
    "trl-cpotrainer-export": ("test_repairs_trl::test_orpo_cpo_exports",),
    "trl-simple-chat-template": ("test_repairs_trl::test_simple_chat_template",),
    "trl-commands-cli-utils": ("test_repairs_trl::test_cli_utils_module",),
    "trl-modelconfig-torch-dtype": ("test_repairs_trl::test_model_config",),
    "trl-modelconfig-torch-dtype-kwarg": ("test_repairs_trl::test_model_config",),
    "trl-modelconfig-trust-remote-code": ("test_repairs_trl::test_model_config",),
    "trl-dpo-trainer-tokenizer": ("test_repairs_trl::test_dpo_trainer_old_arguments",),
    "trl-dpotrainer-config-args": ("test_repairs_trl::test_dpo_trainer_old_arguments",),
    "trl-apply-chat-template-tokenizer": ("test_repairs_trl::test_apply_chat_template",),
    "trl-maybe-apply-chat-template-tokenizer": ("test_repairs_trl::test_apply_chat_template",),
    "transformers-hfargparser-removed-flags": ("test_repairs_transformers::test_removed_flags",),
    "transformers-from-pretrained-removed-kwargs": ("test_repairs_transformers::test_from_pretrained",),
    "trl-env-utils": ("test_repairs_trl::test_env_utils_module",),
    "trl-hfargparser-removed-flags": ("test_repairs_trl::test_trl_parser_removed_flags",),
    "huggingface-hub-utils-hffolder": ("test_repairs_huggingface_hub::test_hffolder",),
}


def _restored() -> None:
    """The records driven by data/restore.json are proved by tests/test_restored.py."""
    import json

    data = json.loads((SRC / "odin_compat" / "data" / "restore.json").read_text(encoding="utf-8"))
    for kind in ("moved", "backports"):
        for row in data[kind]:
            rest = row["where"].removeprefix(row["lib"]).strip(".")
            parts = (row["lib"].replace("_", "-"), "moved" if kind == "moved" else "backport",
                     rest.replace(".", "-"), row["name"])  # fmt: skip
            PROVES["-".join(p for p in parts if p)] = ("test_restored::test_moved_and_backported_names",)
    for record_id in ("transformers-trainingarguments-removed-fields", "trl-dpoconfig-removed-fields"):
        PROVES[record_id] = ("test_restored::test_removed_fields",)  # both removed-fields tests


_restored()


def _junit_results(path: str) -> dict[str, tuple[str, float]]:
    import xml.etree.ElementTree as ET

    results: dict[str, tuple[str, float]] = {}
    for case in ET.parse(path).iter("testcase"):
        module = case.get("classname", "").rpartition(".")[2]
        if not module:
            continue  # a module skipped at collection (not a matrix test)
        name = f"{module}::{case.get('name')}"
        status = "pass"
        for child in case:
            if child.tag in ("failure", "error"):
                status = "FAIL"
            elif child.tag == "skipped":
                status = "skip"
        results[name] = (status, float(case.get("time", 0)))
    return results


def report(junits: list[str], out: str) -> None:
    """Write docs/matrix.md: per record, its tests and their outcome; then every test."""
    import datetime
    import platform

    sys.path.insert(0, str(SRC))
    import odin_compat  # noqa: F401  (registers the records)
    from odin_compat import _records

    results: dict[str, tuple[str, float]] = {}
    for junit in junits:  # later files (re-runs) override earlier ones
        results.update(_junit_results(junit))
    total = sum(t for _, t in results.values())
    lines = [
        "# Version matrix: latest full result",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Python {platform.python_version()}, {platform.platform()}",
        "- shared venv: torch 2.13.0 (CPU), numpy 2, huggingface_hub 2.4.0; each release set from "
        "`.matrix/<set>` first on PYTHONPATH (see `tests/matrix.py` for the exact pins)",
        f"- command: `nox -s matrix` (pytest -m matrix); {len(results)} tests in {total:.0f} s of test time",
        "- results from: "
        + ", ".join(f"`{Path(j).name}`" for j in junits)
        + " (a later file re-runs tests of an earlier one)",
        "",
        "Each record has a test that reproduces the real error on the real breaking release without odin,",
        "passes with `import odin_compat` first, and an identity test on the working side (odin decided",
        "on the record, skipped it, and the upstream object is the one in use).",
        "",
        "| record | works | breaks | result | tests |",
        "|---|---|---|---|---|",
    ]
    proven = 0
    for record in sorted(_records.REGISTRY.all(), key=lambda r: r.id):
        prefixes = PROVES.get(record.id, ())
        tests = {n: r for n, r in results.items() if any(n.startswith(p) for p in prefixes)}
        if not tests:
            verdict = "not in matrix"
        elif all(s == "pass" for s, _ in tests.values()):
            verdict, proven = "**pass**", proven + 1
        elif any(s == "FAIL" for s, _ in tests.values()):
            verdict = "**FAIL**"
        else:
            verdict = "skipped"
        names = ", ".join(f"`{n.partition('::')[2]}` {s}" for n, (s, _) in sorted(tests.items()))
        lines.append(f"| `{record.id}` | {record.works} | {record.breaks} | {verdict} | {names or '-'} |")
    lines += ["", f"{proven} of {len(_records.REGISTRY.all())} records proven in this run.", ""]
    lines += [
        "## Rows of research/breakages.md without a record",
        "",
        "- row 6 (`is_npu_available` / `is_xpu_available` / `is_mlu_available` on accelerate < 0.21 / 0.20 / 0.29):",
        "  accelerate 0.19/0.20 do not import here (they need `pkg_resources`), and peft guards its",
        "  `is_mlu_available` import by accelerate's version, so no crash was reproduced.",
        "- row 11 (`SFTTrainer._prepare_non_packed_dataloader`): only third-party patchers that read trl's",
        "  source hit it; the proposed guard is inferred, not an upstream behaviour to restore.",
        "- row 18 (`cached_download`): a faithful backport needs huggingface_hub 0.25 internals, and",
        "  proving it needs the network.",
        "- row 19, second half (`hf_hub_download(resume_download=...)`): not a crash on any release;",
        "  huggingface_hub 1.0.0 already drops these keywords with a warning",
        "  (`utils/_validators.py::smoothly_deprecate_legacy_arguments`).",
        "- rows 20-21 (`torch.get_default_device`, `torch.utils._pytree.register_pytree_node`): need",
        "  torch < 2.3 / < 2.2, which this CPU-only machine cannot install next to torch 2.13.",
        "",
    ]
    lines += ["## All matrix tests", "", "| test | result | seconds |", "|---|---|---|"]
    lines += [f"| `{n}` | {s} | {t:.1f} |" for n, (s, t) in sorted(results.items())]
    Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "report":
        report(sys.argv[2:-1], sys.argv[-1])
    else:
        raise SystemExit("usage: python tests/matrix.py report JUNIT.xml [JUNIT2.xml ...] OUT.md")
