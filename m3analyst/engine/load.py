"""Loading: the model named by the settings (pulled and converted on first use) onto the host's device and dtype."""

from __future__ import annotations

from pathlib import Path

import torch

from m3analyst.engine import attention
from m3analyst.engine.core import Engine
from m3analyst.engine.host import DtypePlan, pick_device, pick_dtype, pick_threads
from m3analyst.engine.progress import note
from m3analyst.engine.pull import Reporter, ensure_model
from m3analyst.engine.quant import should_fit
from m3analyst.engine.catalog import MODELS, is_local_path
from m3analyst.errors import ModelError, UsageError
from m3analyst.settings import EngineSettings, current


def load_engine(settings: EngineSettings | None = None, progress: Reporter | None = None) -> Engine:
    """Load the model named by settings.model (registry name, HF dir or .gguf), pulling it if needed.

    progress(description, done, total) is called during pull/convert; None draws a Rich progress bar
    on stderr (silent when stderr is not a terminal).
    """
    settings = settings or current().engine
    if settings.backend == "openai":
        from m3analyst.engine.remote import load_remote

        return load_remote(settings)
    if settings.model is None:
        raise UsageError("no model selected (--model none)")
    choice = None
    if settings.model == "auto":
        from m3analyst.engine.auto import choose

        choice = choose(settings.time_budget, settings.device)
        settings = settings.model_copy(update={"model": choice.model})
    from m3analyst.kernels import msa as kernels_msa

    kernels_msa.configure(settings.kernels)
    torch.set_num_threads(pick_threads(settings.threads))
    if progress is None:
        from m3analyst.engine.progress import rich_reporter

        with rich_reporter() as report:
            hf_dir = ensure_model(settings.model, progress=report)
    else:
        hf_dir = ensure_model(settings.model, progress=progress)
    device = pick_device(settings.device)
    plan = pick_dtype(settings.dtype, device)
    fit = should_fit(hf_dir, device, plan.decode, plan.prefill, settings.dtype)  # large model, CPU without bf16
    load_dtype = torch.bfloat16 if fit else plan.decode
    note(f"loading {settings.model} ({'int8 linears, fp32 activations' if fit else str(load_dtype)[6:]}, {device.type})")
    try:
        model, tok = _load_fitted(hf_dir) if fit else _load_hf(hf_dir, device, load_dtype)
    except ModelError:
        raise
    except Exception as e:  # noqa: BLE001 - a corrupt converted cache: rebuild once
        if is_local_path(settings.model) and not str(settings.model).endswith(".gguf"):
            raise ModelError(f"{hf_dir}: cannot load model: {type(e).__name__}: {e}") from e
        hf_dir = ensure_model(settings.model, progress=progress, rebuild=True)
        model, tok = _load_fitted(hf_dir) if fit else _load_hf(hf_dir, device, load_dtype)
    if fit:  # int8 linears, fp32 activations, bf16 embedding table: no fp32 copy of the model
        plan = DtypePlan(torch.float32)
    fused = _fuse_cpu_modules(model)
    prefill_model = None
    if plan.decode_int8:
        from m3analyst.engine.quant import int8_copy

        prefill_model, model = model, int8_copy(model, plan.decode)
    elif plan.prefill is not None and plan.prefill != plan.decode:
        import copy

        prefill_model = copy.deepcopy(model).to(plan.prefill)
    name = settings.model if not is_local_path(settings.model) else Path(settings.model).name
    spec = MODELS.get(settings.model)
    engine = Engine(model, tok, settings, name=name, path=hf_dir, context_length=spec.context_length if spec else None,
                    prefill_model=prefill_model, fused_modules=fused)
    from m3analyst.engine.auto import apply, for_named
    from m3analyst.engine.progress import engine_meter

    engine.meter = engine_meter()
    choice = choice or for_named(settings.model, settings.time_budget, device)
    if choice is not None:
        apply(engine, choice)
    return engine


def _fuse_cpu_modules(model) -> dict[str, int]:
    """bf16 on CPU: RMSNorms and gated MLPs onto the fused C kernels (engine/fuse.py); counts swapped."""
    p = next(model.parameters())
    if p.device.type != "cpu" or p.dtype != torch.bfloat16:
        return {}
    from m3analyst.engine.fuse import fuse_modules

    return fuse_modules(model)


def _load_fitted(hf_dir: Path):
    """A large model for a CPU without bf16, int8 (engine/fitcache.py: quantized once, then loaded as saved)."""
    from m3analyst.engine.fitcache import load_fitted

    return load_fitted(hf_dir, _load_hf, attention.register())


def _load_hf(hf_dir: Path, device: torch.device, dtype: torch.dtype):
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    impl = attention.register()
    tok = AutoTokenizer.from_pretrained(str(hf_dir))
    model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=dtype, attn_implementation=impl)
    return model.to(device).eval(), tok
