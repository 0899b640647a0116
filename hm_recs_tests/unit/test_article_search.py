"""The article search behind both retrieval models: flat and ivf against the exact brute force, the bias as an
extra dimension, the sparse repeat term merged exactly."""

import pytest
import torch

from hm_recs.models.article_search import ArticleSearch, merge_sparse
from hm_recs.models.configs import EXACT_SEARCH, SearchConfig


def clustered(n_articles=6000, n_customers=1500, dim=16, seed=0):
    """Articles and customers around shared centres, a heavy-tailed bias: vectors shaped like trained ones."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(40, dim, generator=g)

    def around(n):
        return centres[torch.randint(0, 40, (n,), generator=g)] + 0.7 * torch.randn(n, dim, generator=g)

    vectors, customers = around(n_articles), around(n_customers)
    bias = -torch.log(-torch.log(torch.rand(n_articles, generator=g)))  # Gumbel: a few articles sell far more
    return torch.arange(n_articles), 0.3 * vectors, bias, 0.3 * customers


def overlap(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.unsqueeze(2) == b.unsqueeze(1)).any(2).float().mean())


def test_flat_finds_the_exact_lists_with_the_bias():
    articles, vectors, bias, customers = clustered()
    exact_scores, exact_positions = (
        ArticleSearch(EXACT_SEARCH).fit(articles, vectors, bias, customers, 30).top(customers, 30)
    )
    flat = ArticleSearch(SearchConfig(method="flat")).fit(articles, vectors, bias, customers, 30)
    scores, positions = flat.top(customers, 30)
    assert overlap(positions, exact_positions) > 0.999
    assert torch.allclose(scores, exact_scores, atol=1e-4)
    # without the bias dimension the lists would differ: the bias is in the search, not dropped
    no_bias = torch.topk(customers @ vectors.T, 30, dim=1).indices
    assert overlap(no_bias, exact_positions) < 0.9


def test_ivf_is_tuned_to_its_target_recall_on_the_weeks_customers():
    articles, vectors, bias, customers = clustered()
    search = ArticleSearch(SearchConfig(method="ivf", target_recall=0.95)).fit(articles, vectors, bias, customers, 30)
    assert search.method == "ivf" and search.tuning_recall >= 0.95 and 1 <= search.nprobe <= search.cells
    _, positions = search.top(customers, 30)
    exact = torch.topk(customers @ vectors.T + bias, 30, dim=1).indices
    assert overlap(positions, exact) >= 0.94  # the tuning sample is these customers' first 2,000 (all of them)
    figures = search.figures()
    assert figures["search_method"] == "ivf" and figures["ivf_nprobe"] == search.nprobe


def test_auto_chooses_by_the_number_of_articles_and_rebuilds_for_other_articles():
    articles, vectors, bias, customers = clustered(n_articles=3000)
    search = ArticleSearch(SearchConfig(ann_min_articles=2000))
    search.fit(articles, vectors, bias, customers, 10)
    assert search.method == "ivf"
    search.fit(articles[:1000], vectors[:1000], bias[:1000], customers, 10)
    assert search.method == "flat"
    _, positions = search.top(customers, 10)
    assert int(positions.max()) < 1000


def test_merge_sparse_matches_the_dense_sum():
    """A sparse term that moves own articles up and down: merged into a searched list = the dense top k."""
    articles, vectors, bias, customers = clustered(n_articles=2000, n_customers=300)
    g = torch.Generator().manual_seed(1)
    row = torch.randint(0, 300, (3000,), generator=g)
    position = torch.randint(0, 2000, (3000,), generator=g)
    value = 3 * torch.randn(3000, generator=g)  # large both ways: pushes own articles in and out of the top
    dense = (customers @ vectors.T + bias).index_put((row, position), value, accumulate=True)
    expected = torch.topk(dense, 20, dim=1)
    base = torch.topk(customers @ vectors.T + bias, 20 + 30, dim=1)
    scores, positions = merge_sparse(base.values, base.indices, customers, vectors, bias, (row, position, value), 20)
    assert overlap(positions, expected.indices) > 0.999
    assert torch.allclose(scores, expected.values, atol=1e-4)
    for method in ("exact", "flat", "ivf"):
        search = ArticleSearch(SearchConfig(method=method)).fit(articles, vectors, bias, customers, 20)
        _, found = search.top(customers, 20, (row, position, value))
        assert overlap(found, expected.indices) > (0.999 if method != "ivf" else 0.95), method


def test_short_ivf_lists_are_completed_exactly():
    """Asked for nearly every article, the probed cells may hold too few: those customers are scored exactly."""
    articles, vectors, bias, customers = clustered(n_articles=400, n_customers=50)
    search = ArticleSearch(SearchConfig(method="ivf", target_recall=0.5)).fit(articles, vectors, bias, customers, 390)
    _, positions = search.top(customers, 390)
    assert positions.shape == (50, 390) and int(positions.min()) >= 0
    assert all(len(set(r.tolist())) == 390 for r in positions)


def test_unknown_method_or_device_is_refused():
    with pytest.raises(ValueError, match="search method"):
        SearchConfig(method="hnsw")
    with pytest.raises(ValueError, match="search device"):
        SearchConfig(device="tpu")


def test_on_a_gpu_auto_searches_exactly_there_and_on_cpu_through_faiss():
    assert SearchConfig().resolved(100_000, on_gpu=True) == "exact"
    assert SearchConfig().resolved(100_000) == "ivf" and SearchConfig().resolved(100) == "flat"
    articles, vectors, bias, customers = clustered(n_articles=500, n_customers=20)
    search = ArticleSearch(SearchConfig(device="cpu")).fit(articles, vectors, bias, customers, 5)
    assert search.figures()["search_device"] == "cpu" and search.method == "flat"
