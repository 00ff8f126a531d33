"""m3analyst: analyst memos from one long-context prompt, on an embedded MSA engine.

Data flows one way: ingest -> Document -> domain facts -> prompt -> engine -> memo -> verify -> render.
"""

from pathlib import Path as _Path

__version__ = "0.1.0"


def _checkout_kernels() -> None:
    """Name the repository's kernels/ folder as `m3analyst.kernels` in a source checkout.

    kernels/ has no __init__.py, so that a checkout on sys.path (`python -m pytest` or `python -m m3analyst` from the
    root) can never shadow the Hugging Face package `kernels`, which transformers imports. A wheel installs the folder
    as m3analyst/kernels/ (setup.py), where it imports as a namespace package; an editable install's finder does not
    map a namespace folder nested in a package, so in a checkout this declares it.
    """
    import importlib.machinery
    import importlib.util
    import sys

    here = _Path(__file__).resolve().parent
    folder = here.parent / "kernels"
    if "m3analyst.kernels" in sys.modules or (here / "kernels").is_dir():
        return
    if not ((here.parent / "pyproject.toml").is_file() and folder.is_dir()):
        return
    spec = importlib.machinery.ModuleSpec("m3analyst.kernels", None, is_package=True)
    spec.submodule_search_locations = [str(folder)]
    sys.modules["m3analyst.kernels"] = importlib.util.module_from_spec(spec)


_checkout_kernels()
