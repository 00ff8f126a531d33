"""Package layout: the top-level folders kernels/, domains/, prompts/, evals/ and templates/ install inside
the package (m3analyst.kernels, m3analyst.resources.*). kernels/ must never become a top-level
module named `kernels`: a Hugging Face package owns that name and transformers probes for it."""
from setuptools import find_packages, setup

MAPPED = {
    "m3analyst.kernels": "kernels",
    "m3analyst.resources.domains": "domains",
    "m3analyst.resources.prompts": "prompts",
    "m3analyst.resources.evals": "evals",
    "m3analyst.resources.templates": "templates",
}


def _mapped_packages():
    packages, dirs = [], {}
    for name, folder in MAPPED.items():
        packages.append(name)
        dirs[name] = folder
        for sub in find_packages(folder):
            packages.append(f"{name}.{sub}")
            dirs[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"
    return packages, dirs


mapped, mapped_dirs = _mapped_packages()
setup(
    packages=find_packages(include=["m3analyst", "m3analyst.*"]) + mapped,
    package_dir={"m3analyst": "m3analyst", **mapped_dirs},
    package_data={
        "m3analyst.kernels": ["*.c", "*.h"],  # the CPU kernels, compiled on first use (kernels/cbuild.py)
        "m3analyst.kernels.msa": ["*.c"],  # the MSA op folder's C kernel (kernels/msa/cpu.c)
        # one folder per domain: domains/<name>/spec.yaml (+ its prompt template, playbooks); flat <name>.yaml too
        "m3analyst.resources.domains": ["*.yaml", "*.yml", "*.toml", "*/*.yaml", "*/*.yml", "*/*.toml", "*/*.j2", "*/*.md"],
        "m3analyst.resources.prompts": ["*.j2", "*.md"],
        "m3analyst.resources.evals": ["*.jsonl", "*.md"],
        "m3analyst.resources.templates": ["*.j2"],
    },
)
