"""The user's crash, on real accelerate releases: reproduce without odin, then prove the repair.

Each case installs the release into `.matrix/` (cached) and runs
`tests/standins/prepare_scenario.py`, which rebuilds `Accelerator.prepare` the
way unsloth 2025.3.3 does and calls it on a real `Accelerator(cpu=True)`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from _releases import ROOT, release, run_json

pytestmark = pytest.mark.matrix

SCENARIO = ROOT / "tests" / "standins" / "prepare_scenario.py"

# version -> the NameError unsloth's rebuilt prepare raises without odin (None: it works)
PLAIN = {
    "0.33.0": None,
    "1.7.0": None,
    "1.8.1": "is_torch_version",  # unsloth #2775, accelerate #3641
    "1.9.0": "is_torch_version",
    "1.12.0": "is_torch_version",
    "1.15.0": "FP8BackendType",  # 1.15's prepare reads FP8BackendType before is_torch_version
}
# With xformers installed, unsloth's star import leaks is_torch_version: the user's exact error.
XFORMERS = {
    "1.8.1": "is_torch_version",
    "1.9.0": "is_torch_version",
    "1.12.0": "FP8BackendType",
    "1.15.0": "FP8BackendType",
}


def scenario(version: str, *flags: str, xformers: bool = False) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(release(f"accelerate=={version}")), str(ROOT / "src"), str(ROOT / "tests")]
        ),
    }
    env["UNSLOTH_LIKE_XFORMERS"] = "1" if xformers else "0"
    env.pop("ODIN_COMPAT_DISABLE", None)
    proc = subprocess.run(
        [sys.executable, str(SCENARIO), *flags], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("version", sorted(PLAIN))
def test_without_odin_the_rebuilt_prepare_fails_as_users_saw(version: str) -> None:
    result = scenario(version)
    assert result["rebuilt_file"] == "<string>"
    expected = PLAIN[version]
    if expected is None:
        assert result["ok"], result
    else:
        assert result["error"] == f"NameError: name '{expected}' is not defined"
        assert result["where"].startswith('File "<string>"') and result["where"].endswith("in prepare")


@pytest.mark.parametrize("version", sorted(XFORMERS))
def test_the_users_exact_error_with_xformers(version: str) -> None:
    result = scenario(version, xformers=True)
    expected = XFORMERS[version]
    if expected is None:
        assert result["ok"], result
    else:
        assert result["error"] == f"NameError: name '{expected}' is not defined"
    if version == "1.12.0":  # the seed's lock: the exact frame of the report
        assert result["where"] == 'File "<string>", line 135, in prepare'


@pytest.mark.parametrize("late", [False, True])
@pytest.mark.parametrize(
    "version, xformers", [*((v, False) for v in sorted(PLAIN)), ("1.12.0", True), ("1.15.0", True)]
)
def test_with_odin_first_prepare_runs(version: str, late: bool, xformers: bool) -> None:
    flags = ["--odin"] + (["--late"] if late else [])
    result = scenario(version, *flags, xformers=xformers)
    assert result == {"rebuilt_file": "<string>", "ok": True, "error": None}


@pytest.mark.parametrize("xformers", [False, True])
def test_odin_imported_after_the_rebuild_still_heals(xformers: bool) -> None:
    # The original `prepare` is gone before odin loads: the healer proves the derivation from
    # accelerate's source file and heals unsloth's namespace in the late sweep.
    result = scenario("1.12.0", "--odin-after", xformers=xformers)
    assert result == {"rebuilt_file": "<string>", "ok": True, "error": None}


def test_disable_switch_leaves_the_crash() -> None:
    env_result = subprocess.run(
        [sys.executable, str(SCENARIO), "--odin"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "ODIN_COMPAT_DISABLE": "1", "UNSLOTH_LIKE_XFORMERS": "1",
             "PYTHONPATH": os.pathsep.join([str(release("accelerate==1.12.0")), str(ROOT / "src"), str(ROOT / "tests")])},
    )  # fmt: skip
    result = json.loads(env_result.stdout.strip().splitlines()[-1])
    assert result["error"] == "NameError: name 'FP8BackendType' is not defined"


IDENTITY = """
import json, odin_compat, accelerate.utils, accelerate.utils.dataclasses as dc, accelerate.accelerator as acc
print(json.dumps({
    "same_alias": accelerate.utils.FP8BackendType is dc.FP8BackendType,
    "module": dc.FP8BackendType.__module__,
    "defined_in_file": "class FP8BackendType" in open(dc.__file__).read(),
    "accelerator_uses_same": getattr(acc, "FP8BackendType", dc.FP8BackendType) is dc.FP8BackendType,
    "members": {m.name: m.value for m in dc.FP8BackendType},
    "bases": [b.__name__ for b in dc.FP8BackendType.__mro__],
    "doc": dc.FP8BackendType.__doc__,
    "outcomes": {o["id"]: o["status"] for o in odin_compat.report()["outcomes"]},
}))
"""


@pytest.mark.parametrize("version", ["0.34.0", "1.12.0", "1.15.0"])
def test_identity_where_upstream_has_it(version: str) -> None:
    r = run_json(IDENTITY, release(f"accelerate=={version}"))
    assert r["defined_in_file"] and r["same_alias"] and r["accelerator_uses_same"]
    assert r["module"] == "accelerate.utils.dataclasses"
    assert r["outcomes"]["accelerate-fp8backendtype"] == "skipped"  # never replaces upstream's class
    assert r["outcomes"]["accelerate-utils-fp8backendtype"] == "applied"  # no release exports it there


def test_backport_matches_latest_upstream_class() -> None:
    old = run_json(IDENTITY, release("accelerate==0.33.0"))
    new = run_json(IDENTITY, release("accelerate==1.12.0"))
    assert not old["defined_in_file"] and old["outcomes"]["accelerate-fp8backendtype"] == "applied"
    assert old["same_alias"] and old["module"] == "accelerate.utils.dataclasses"
    for key in ("members", "bases", "doc"):
        assert old[key] == new[key], key
    assert old["members"] == {"NO": "NO", "TE": "TE", "MSAMP": "MSAMP", "AO": "AO"}


def test_without_odin_accelerate_utils_has_no_fp8backendtype() -> None:
    code = "import accelerate.utils as u, json; print(json.dumps(hasattr(u, 'FP8BackendType')))"
    for version in ("0.33.0", "1.12.0", "1.15.0"):
        assert run_json(code, release(f"accelerate=={version}"), env={"ODIN_COMPAT_DISABLE": "1"}) is False
