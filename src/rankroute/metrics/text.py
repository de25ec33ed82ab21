"""Reference-based text metrics: BLEU, chrF, TER (sacrebleu), ROUGE (rouge-score), METEOR (nltk), BERTScore.

Each wraps the field's reference implementation so our numbers equal the ones papers report; corpus-level
scores are on sacrebleu's 0-100 scale, ROUGE/METEOR/BERTScore on 0-1 as their libraries return them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from statistics import fmean
from typing import Any

from rankroute.metrics.errors import MetricUnavailable, check_parallel


def _sacrebleu_tokenizer(target_language: str | None) -> str | None:
    """sacrebleu's tokenizer for a target language, as WMT scores it; None means sacrebleu's default."""
    if target_language is None:
        return None
    lang = target_language.lower()
    if lang.startswith("zh"):
        return "zh"
    if lang.startswith("ja"):
        return "ja-mecab"
    if lang.startswith("ko"):
        return "ko-mecab"
    return "13a"


def bleu(
    hypotheses: Sequence[str],
    references: Sequence[str],
    *,
    tokenize: str | None = None,
    target_language: str | None = None,
    lowercase: bool = False,
) -> float:
    """Corpus BLEU exactly as sacrebleu reports it (0-100), one reference per hypothesis.

    `tokenize` is a sacrebleu tokenizer name ("13a", "zh", "intl", ...); without it the tokenizer follows
    `target_language` (zh -> "zh", ja -> "ja-mecab") as in WMT's official scoring, else sacrebleu's "13a".
    """
    from sacrebleu.metrics import BLEU

    check_parallel("bleu", list(hypotheses), list(references))
    metric = BLEU(tokenize=tokenize or _sacrebleu_tokenizer(target_language), lowercase=lowercase)
    return float(metric.corpus_score(list(hypotheses), [list(references)]).score)


def sentence_bleu(hypothesis: str, reference: str, *, target_language: str | None = None) -> float:
    """Smoothed sentence BLEU (0-100), sacrebleu's `effective_order` variant meant for single segments."""
    from sacrebleu.metrics import BLEU

    metric = BLEU(tokenize=_sacrebleu_tokenizer(target_language), effective_order=True)
    return float(metric.sentence_score(hypothesis, [reference]).score)


def chrf(
    hypotheses: Sequence[str], references: Sequence[str], *, word_order: int = 0, lowercase: bool = False
) -> float:
    """Corpus chrF (0-100) as sacrebleu computes it; word_order=2 gives chrF++."""
    from sacrebleu.metrics import CHRF

    check_parallel("chrf", list(hypotheses), list(references))
    metric = CHRF(word_order=word_order, lowercase=lowercase)
    return float(metric.corpus_score(list(hypotheses), [list(references)]).score)


def sentence_chrf(hypothesis: str, reference: str) -> float:
    """chrF (0-100) of one segment: the per-prompt quality signal for translation tasks."""
    from sacrebleu.metrics import CHRF

    return float(CHRF().sentence_score(hypothesis, [reference]).score)


def ter(hypotheses: Sequence[str], references: Sequence[str], *, case_sensitive: bool = False) -> float:
    """Corpus translation edit rate (sacrebleu; 0 = identical, lower is better, can exceed 100)."""
    from sacrebleu.metrics import TER

    check_parallel("ter", list(hypotheses), list(references))
    metric = TER(case_sensitive=case_sensitive)
    return float(metric.corpus_score(list(hypotheses), [list(references)]).score)


ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def rouge(
    predictions: Sequence[str], references: Sequence[str], *, use_stemmer: bool = True
) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measure in [0, 1] (Google's rouge-score, Porter stemming as the XSum papers report).

    rougeL is the sentence-level LCS variant (no newline splitting), which is what most summarisation papers
    call ROUGE-L; an empty input gives 0 for every key.
    """
    from rouge_score import rouge_scorer

    check_parallel("rouge", list(predictions), list(references))
    tokenizer = _cached_stem_tokenizer() if use_stemmer else None
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer, tokenizer=tokenizer)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for prediction, reference in zip(predictions, references, strict=True):
        scores = scorer.score(reference, prediction)
        for key in ROUGE_TYPES:
            totals[key] += scores[key].fmeasure
    count = len(predictions)
    return {key: (total / count if count else 0.0) for key, total in totals.items()}


@functools.cache
def _cached_stem_tokenizer() -> Any:
    """rouge-score's own tokenizer with a memoised Porter stemmer: identical tokens, several times faster
    on a corpus (stemming each word again is most of rouge-score's run time)."""
    from nltk.stem import porter
    from rouge_score import tokenize, tokenizers

    class CachedStemmer:
        stem = staticmethod(functools.lru_cache(maxsize=1 << 17)(porter.PorterStemmer().stem))

    class CachedStemTokenizer(tokenizers.Tokenizer):
        stemmer = CachedStemmer()

        def tokenize(self, text: str) -> list[str]:
            return list(tokenize.tokenize(text, self.stemmer))

    return CachedStemTokenizer()


def meteor(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Mean sentence METEOR in [0, 1] (nltk's, alpha=0.9, beta=3, gamma=0.5), with whitespace tokenisation.

    Synonym matching needs WordNet: nltk's own corpus, else `$RANKROUTE_WORDNET`, else the one that
    `python -m rankroute.metrics.wordnet install` put in the cache; none raises MetricUnavailable saying so.
    """
    from nltk.translate.meteor_score import meteor_score

    from rankroute.metrics.wordnet import load_wordnet  # here: `python -m` runs wordnet.py cleanly

    check_parallel("meteor", list(hypotheses), list(references))
    wordnet = load_wordnet()
    scores = [
        meteor_score([reference.split()], hypothesis.split(), wordnet=wordnet)
        for hypothesis, reference in zip(hypotheses, references, strict=True)
    ]
    return fmean(scores) if scores else 0.0


def bertscore(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    model_type: str | None = None,
    lang: str = "en",
) -> dict[str, float]:
    """Mean BERTScore precision/recall/F1 (the `bert-score` package; optional, needs its model weights)."""
    check_parallel("bertscore", list(predictions), list(references))
    try:
        import bert_score
    except ImportError as error:
        raise MetricUnavailable(
            "bertscore needs the optional package `bert-score`, which is not installed",
            hint="pip install bert-score (it downloads a RoBERTa model from Hugging Face on first use)",
        ) from error
    precision, recall, f1 = bert_score.score(
        list(predictions), list(references), model_type=model_type, lang=lang, verbose=False
    )
    return {
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "f1": float(f1.mean()),
    }
