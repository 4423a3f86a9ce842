"""The records driven by data/restore.json (moved names, backports, removed fields) against the real releases.

Every moved name and every backport of restore.json: without odin each import fails on today's release;
with odin each resolves, a moved name to today's object itself, a backport to a definition with the name
and docstring of the release it comes from. Removed fields: the TypeError and the unused-flag error without
odin, accepted with it; on a release that still has them, odin skips the record and upstream's own field is used.
"""

from __future__ import annotations

import json

import pytest

from matrix import DATASETS, T5, breaks, common, run, target, untouched, works  # noqa: F401

pytestmark = pytest.mark.matrix

CHECK = """
import ast, importlib, inspect, json, sys, warnings
warnings.simplefilter("ignore")
from importlib import resources
data = json.loads(resources.files("odin_compat").joinpath("data", "restore.json").read_text())
from odin_compat.repairs.backported import source
libs = LIBS
out = {"moved": {}, "backports": {}}

def get(where, name):
    ns = {}
    exec(f"from {where} import {name} as obj", ns)
    return ns["obj"]

for row in data["moved"]:
    if row["lib"] not in libs:
        continue
    try:
        same = get(row["where"], row["name"]) is getattr(importlib.import_module(row["target"]), row["name"])
        out["moved"][row["where"] + "." + row["name"]] = "same" if same else "other object"
    except Exception as exc:
        out["moved"][row["where"] + "." + row["name"]] = type(exc).__name__
for row in data["backports"]:
    if row["lib"] not in libs:
        continue
    key = row["where"] + "." + row["name"]
    try:
        obj = get(row["where"], row["name"])
        for node in ast.parse(source(row)["code"]).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == row["defines"]:
                doc = inspect.cleandoc(ast.get_docstring(node, clean=False) or "")
                assert obj.__name__ == row["defines"]
                assert not doc or inspect.cleandoc(obj.__doc__ or "") == doc
        out["backports"][key] = "ok"
    except Exception as exc:
        out["backports"][key] = type(exc).__name__
print(json.dumps(out))
"""


def today():
    return (
        target("trl==1.16.0"),
        target(*T5),
        target("accelerate==1.15.0", "peft==0.21.2"),
        target(*DATASETS),
        common(),
    )


def _check(libs: tuple[str, ...], odin: bool) -> dict:
    proc = run(CHECK.replace("LIBS", repr(libs)), *today(), odin=odin)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("libs", [("transformers",), ("trl",), ("peft", "accelerate")])
def test_moved_and_backported_names(libs: tuple[str, ...]) -> None:
    without = _check(libs, odin=False)
    with_odin = _check(libs, odin=True)
    repaired = 0
    for kind, good in (("moved", "same"), ("backports", "ok")):
        assert with_odin[kind].keys() == without[kind].keys()
        for key, before in without[kind].items():
            if before == "ImportError":  # the real breakage: odin repairs it
                assert with_odin[kind][key] == good, (key, with_odin[kind][key])
                repaired += 1
            else:  # today's release still resolves it (dynamically): odin leaves upstream's object alone
                assert with_odin[kind][key] == before, (key, before, with_odin[kind][key])
    assert repaired


def test_backports_behave_as_upstream() -> None:
    code = """
    import torch
    from trl.trainer.utils import exact_div, cap_exp, SIMPLE_CHAT_TEMPLATE
    from trl.trainer.dpo_config import FDivergenceType
    from transformers.trainer_utils import EvaluationStrategy
    from transformers.trainer_pt_utils import SequentialDistributedSampler
    assert exact_div(6, 3) == 2
    assert FDivergenceType("js_divergence") is FDivergenceType.JS_DIVERGENCE
    assert EvaluationStrategy("steps").value == "steps"
    assert list(SequentialDistributedSampler(list(range(5)), num_replicas=2, rank=1)) == [3, 4, 0]
    assert SIMPLE_CHAT_TEMPLATE.startswith("{% for message in messages %}")
    print("ok")
    """
    breaks(code, *today(), error="ImportError: cannot import name 'exact_div' from 'trl.trainer.utils'")
    assert works(code, *today()).strip() == "ok"


def test_backport_untouched_on_0_23() -> None:
    code = """
    import importlib
    from trl.trainer.utils import exact_div
    assert exact_div.__code__.co_filename.endswith("trl/trainer/utils.py")
    RECORD = ("trl-backport-trainer-utils-exact_div", "trl-moved-trainer-rloo_trainer-BaseTrainer")
    RECORD = RECORD[0]
    """
    untouched(code, target("trl==0.23.1"), target("transformers==4.57.1", "tokenizers==0.22.1",
              "huggingface_hub==0.36.0"), target("accelerate==1.15.0"), target(*DATASETS), common())  # fmt: skip


FIELDS = """
import sys, warnings
warnings.simplefilter("ignore")
from transformers import HfArgumentParser, TrainingArguments
from trl import DPOConfig
a = TrainingArguments(output_dir="o", logging_dir="logs", save_safetensors=True, report_to=[])
assert a.logging_dir == "logs"
c = DPOConfig(output_dir="o", max_prompt_length=128, report_to=[], use_cpu=True)
assert c.max_prompt_length == 128
(p,) = HfArgumentParser(DPOConfig).parse_args_into_dataclasses(
    ["--output_dir", "o", "--max_prompt_length", "64", "--logging_dir", "l", "--report_to", "none", "--use_cpu", "True"])
print("ok")
"""


def test_removed_fields_break_and_are_accepted() -> None:
    breaks(FIELDS, *today(), error="got an unexpected keyword argument 'logging_dir'")
    assert works(FIELDS, *today()).strip().endswith("ok")
    flags = FIELDS.replace(
        'a = TrainingArguments(output_dir="o", logging_dir="logs", save_safetensors=True, report_to=[])\nassert a.logging_dir == "logs"\nc = DPOConfig(output_dir="o", max_prompt_length=128, report_to=[], use_cpu=True)\nassert c.max_prompt_length == 128\n',
        "",
    )
    breaks(flags, *today(), error="not used by the HfArgumentParser")


def test_removed_fields_keep_upstream_fields_on_4_57() -> None:
    # 4.57.1 lacks only some fields of the table (tp_size, use_ipex): its own fields stay upstream's
    code = """
    from transformers import TrainingArguments
    a = TrainingArguments(output_dir="o", logging_dir="logs", report_to=[], use_cpu=True)
    assert a.logging_dir == "logs" and "logging_dir" in TrainingArguments.__dataclass_fields__
    assert "logging_dir" not in vars(a) or a.logging_dir == vars(a)["logging_dir"]
    print("ok")
    """
    folders = (target("transformers==4.57.1", "tokenizers==0.22.1", "huggingface_hub==0.36.0"),
               target("accelerate==1.15.0"), common())  # fmt: skip
    assert works(code, *folders).strip() == "ok"


def test_importing_the_stack_builds_no_backport() -> None:
    """Backports are built on first use: importing today's stack with odin builds none of them
    (building them all made the stack's import about 10% slower), and a built one stays the same object."""
    import subprocess
    import sys

    code = (
        "import odin_compat, transformers, trl, accelerate, peft, transformers.trainer\n"
        "from odin_compat.repairs import backported\n"
        "built = len(backported._BUILT)\n"
        "from transformers.trainer_pt_utils import DistributedTensorGatherer as first\n"
        "import transformers.trainer_pt_utils as m\n"
        "assert m.DistributedTensorGatherer is first and first.__module__ == 'transformers.trainer_pt_utils'\n"
        "assert 'DistributedTensorGatherer' not in vars(m)  # resolved through odin's module __getattr__\n"
        "print(built, len(backported._BUILT))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["0", "1"]


def test_a_backport_built_on_use_is_one_object_for_every_thread_and_listed() -> None:
    """Threads touching a backport first at the same moment get one object; `dir()` lists backports;
    each backport keeps its own source lines (siblings from one upstream file do not overwrite them)."""
    import subprocess
    import sys

    code = (
        "import inspect, sys, threading\n"
        "import odin_compat\n"
        "sys.setswitchinterval(1e-6)\n"
        "import transformers.trainer_pt_utils as m, trl.trainer.utils as u\n"
        "barrier, got = threading.Barrier(4), []\n"
        "def touch():\n"
        "    barrier.wait()\n"
        "    got.append(m.SequentialDistributedSampler)\n"
        "threads = [threading.Thread(target=touch) for _ in range(4)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "assert len({id(c) for c in got}) == 1 and got[0] is m.SequentialDistributedSampler, got\n"
        "assert 'DistributedTensorGatherer' in dir(m)\n"
        "first = inspect.getsource(u.exact_div)\n"
        "u.cap_exp, u.flush_right\n"
        "assert first.startswith('def exact_div') and inspect.getsource(u.exact_div) == first\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and proc.stdout.split() == ["ok"], proc.stderr[-3000:]


# What unsloth's compiler does with a trainer module: `from module import (<every public name dir() lists>)`.
EVERY_NAME = """
import importlib, json, warnings
warnings.simplefilter("ignore")
from pathlib import Path
import odin_compat  # the table only (with ODIN_COMPAT_DISABLE=1 it repairs nothing)
rows = json.loads((Path(odin_compat.__file__).parent / "data" / "restore.json").read_text())
failed = {}
for where in sorted({r["where"] for r in rows["moved"] + rows["backports"] if r["lib"] == "trl"}):
    try:
        module = importlib.import_module(where)
    except ImportError:
        continue  # not a module of this release
    if hasattr(module, "__path__"):
        continue  # a lazy package lists what its submodules define, importable or not (no odin needed)
    names = [n for n in dir(module) if not n.startswith("_")]
    try:
        exec(f"from {where} import ({', '.join(names)})", {})
    except Exception as exc:
        failed[where] = f"{type(exc).__name__}: {exc}"
print(json.dumps(failed))
"""


@pytest.mark.parametrize("stack", ["fp8_report", "today"])
def test_every_name_dir_lists_imports_as_without_odin(stack: str) -> None:
    """On the FP8 report's stack (trl 0.17), odin listed moved names whose new home (trl.experimental) does
    not exist yet, and backports of names that came after 0.17: unsloth's compiler imports every name that
    `dir()` lists, so `import unsloth` failed with `No module named 'trl.experimental'`."""
    folders = (
        (
            target("unsloth==2025.3.3", "transformers==4.47.1", "accelerate==1.12.0", "trl==0.17.0"),
            target("tokenizers==0.21.1", "huggingface_hub==0.30.2"),
            target(*DATASETS),
            common(),
        )
        if stack == "fp8_report"
        else today()
    )
    results = {}
    for odin in (False, True):
        proc = run(EVERY_NAME, *folders, odin=odin)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[odin] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert results[False] == {}, results[False]  # upstream's own names all import
    assert results[True] == {}, results[True]
