"""Triton kernels for MSA, each beside its plain-PyTorch reference. Installed as `m3analyst.kernels`
(never as a top-level `kernels`: a Hugging Face package owns that name)."""
