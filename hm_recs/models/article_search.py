"""The k best articles for each customer by score = customer . article + b(article) (+ a sparse term at some
customer-article pairs), the search both retrieval models serve through. No Dagster.

Methods (`SearchConfig.method`):
- `exact`: brute force in torch (every customer x every article scored, then top-k): the reference, on whatever
  device the tensors are on (a GPU scores H&M's 935k x 105k in seconds).
- `flat`: faiss's exact inner-product search (the same lists up to float ties; on CPU about 9x faster than torch's
  matmul + topk, which sorts a dense [chunk, articles] score matrix).
- `ivf`: faiss's inverted-file index (k-means cells, `nprobe` of them searched per customer), approximate. Tuned
  on the week's own customers: `nprobe` doubles until the recall@k of a sample of customers against the flat
  search reaches `target_recall`; searching every cell is exact, so the target is always reached.
- `auto` (default): `ivf` from `ann_min_articles` articles on sale, else `flat`.

The bias is handled exactly, as one more dimension: articles [v, b] and customers [u, 1], whose inner product is
the score. The sparse term (the repeat term of a customer's own earlier articles, which can move any of them up
or down) is added by scoring those pairs exactly and merging them into the searched list (`merge_sparse`): the
search returns `k + sparse_margin` articles so that own articles the term moves down leave enough others.
"""

from __future__ import annotations

import torch

from hm_recs.models.configs import SearchConfig


def _faiss():
    import faiss  # imported where used: the code location loads without it

    faiss.omp_set_num_threads(max(torch.get_num_threads(), 1))
    return faiss


def _device(setting: str) -> torch.device:
    """Where the exact search scores: the GPU for "cuda", and for "auto" when torch sees one."""
    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def _rows(x: torch.Tensor):
    """A C-contiguous float32 numpy view for faiss."""
    return x.detach().to("cpu", torch.float32).contiguous().numpy()


class ArticleSearch:
    """Top-k search over one set of articles' vectors and biases; built on first use (`fit`), with the first
    customers it is asked for as the tuning sample, and rebuilt when asked about other articles."""

    def __init__(self, config: SearchConfig = SearchConfig()):
        self.config = config
        self.method: str | None = None
        self.device = torch.device("cpu")
        self.nprobe: int | None = None
        self.cells: int | None = None
        self.tuning_recall: float | None = None  # ivf: recall@k of the tuning sample against flat
        self.refused: str | None = None  # why the ivf index was not used (it would have searched most cells)
        self._articles: torch.Tensor | None = None
        self._index = None
        self._sphere = False  # the index holds `_on_sphere` points (queries get a 0 coordinate)

    def fit(self, articles: torch.Tensor, vectors: torch.Tensor, bias: torch.Tensor, queries: torch.Tensor, k: int):
        """Index `vectors` [n, d] and `bias` [n] of `articles` (ids, to know when to rebuild) unless already."""
        if self._articles is not None and torch.equal(self._articles, articles):
            return self
        self.device = _device(self.config.device)
        self._articles, self.method = articles.clone(), self.config.resolved(len(articles), self.device.type == "cuda")
        self.nprobe = self.cells = self.tuning_recall = self.refused = None
        self._vectors, self._bias = vectors, bias
        if self.method == "exact":
            self._vectors, self._bias = vectors.to(self.device), bias.to(self.device)
        self._index, self._sphere = None, False
        if self.method == "exact":
            return self
        faiss = _faiss()
        augmented = torch.cat([vectors, bias.unsqueeze(1)], dim=1).float()
        flat = faiss.IndexFlatIP(augmented.shape[1])
        flat.add(_rows(augmented))
        self._index = flat
        if self.method == "ivf":
            self._tune_ivf(faiss, flat, augmented, queries[: self.config.tuning_customers], k)
        return self

    def _tune_ivf(self, faiss, flat, augmented: torch.Tensor, queries: torch.Tensor, k: int) -> None:
        """The inverted-file index over the articles as points of a sphere (`_on_sphere`: nearest = best score),
        its `nprobe` doubled until the tuning sample's recall@k reaches the target. When that takes more than a
        quarter of the cells the index saves little over the flat search, which then serves (`refused` says so)."""
        n = augmented.shape[0]
        self.cells = max(1, min(int(4 * n**0.5), n // 39))  # faiss wants >= 39 training points per cell
        points = _rows(_on_sphere(augmented))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatL2(points.shape[1]), points.shape[1], self.cells, faiss.METRIC_L2)
        ivf.cp.seed = 0
        ivf.train(points)
        ivf.add(points)
        sample = self._augmented_queries(queries)
        k = min(k, n)
        _, truth = flat.search(_rows(sample), k)
        sample = _rows(torch.cat([sample, torch.zeros(len(sample), 1)], dim=1))
        nprobe = 1
        while True:
            ivf.nprobe = nprobe
            _, found = ivf.search(sample, k)
            recall = _recall(torch.from_numpy(found), torch.from_numpy(truth))
            if recall >= self.config.target_recall or nprobe >= self.cells:
                break
            nprobe = min(nprobe * 2, self.cells)
        self.nprobe, self.tuning_recall = nprobe, recall
        if nprobe * 4 > self.cells:
            self.refused = f"ivf needed {nprobe} of {self.cells} cells for recall {recall:.3f}: flat search serves"
            self.method = "flat"
        else:
            self._index, self._sphere = ivf, True

    @staticmethod
    def _augmented_queries(queries: torch.Tensor) -> torch.Tensor:
        return torch.cat([queries, torch.ones(len(queries), 1, dtype=queries.dtype, device=queries.device)], dim=1)

    def top(
        self,
        queries: torch.Tensor,
        k: int,
        sparse: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, k] scores and positions (rows of the fitted vectors) of each query's k best articles by
        query . vector + bias, plus the `sparse` (row, position, value) entries where given."""
        k = min(k, len(self._articles))
        if self._index is None:
            scores = queries.to(self.device) @ self._vectors.T + self._bias
            if sparse is not None:
                row, position, value = (t.to(self.device) for t in sparse)
                scores = scores.index_put((row, position), value.to(scores.dtype), accumulate=True)
            best = torch.topk(scores, k, dim=1)
            return best.values.to(queries.device), best.indices.to(queries.device)
        if sparse is None or not len(sparse[0]):
            return self._searched(queries, k)
        scores, positions = self._searched(queries, k + self.config.sparse_margin)
        return merge_sparse(scores, positions, queries, self._vectors, self._bias, sparse, k)

    def _searched(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, k] scores (exact: recomputed from the vectors) and positions of the index's k best per query."""
        k = min(k, len(self._articles))
        points = self._augmented_queries(queries)
        if self._sphere:
            points = torch.cat([points, torch.zeros(len(points), 1, dtype=points.dtype, device=points.device)], dim=1)
        _, positions = self._index.search(_rows(points), k)
        positions = torch.from_numpy(positions).long().to(queries.device)
        short = (positions < 0).any(1)  # ivf: the probed cells held fewer than k articles
        if bool(short.any()):
            positions[short] = torch.topk(queries[short] @ self._vectors.T + self._bias, k, dim=1).indices
        scores = (queries.unsqueeze(1) * self._vectors[positions]).sum(-1) + self._bias[positions]
        scores, order = torch.sort(scores, dim=1, descending=True, stable=True)
        return scores, torch.gather(positions, 1, order)

    def figures(self) -> dict:
        """What the metadata says about the search: method, and for ivf its cells, nprobe and tuning recall."""
        figures = {"search_method": self.method, "search_device": self.device.type}
        if self.nprobe is not None:
            figures.update(ivf_cells=self.cells, ivf_nprobe=self.nprobe, ivf_tuning_recall=round(self.tuning_recall, 4))
        if self.refused:
            figures["ivf_refused"] = self.refused
        return figures


def _on_sphere(points: torch.Tensor) -> torch.Tensor:
    """[n, d + 1] `points` with one more coordinate, sqrt(M^2 - |x|^2) (M the largest norm): all on a sphere of
    radius M, where the nearest point to a query [q, 0] is the one with the largest inner product q . x (the
    maximum-inner-product search as a nearest-neighbour one, Bachrach et al. 2014). Inverted-file cells over
    inner product put the long vectors (the popular articles' high bias) in few cells that every query needs."""
    norms = (points * points).sum(1)
    return torch.cat([points, torch.sqrt((norms.max() - norms).clamp(min=0)).unsqueeze(1)], dim=1)


def _recall(found: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean over rows of |found ∩ truth| / k ([B, k] positions each)."""
    hits = (found.unsqueeze(2) == truth.unsqueeze(1)).any(2).sum(1).float()
    return float((hits / truth.shape[1]).mean())


def merge_sparse(
    scores: torch.Tensor,
    positions: torch.Tensor,
    queries: torch.Tensor,
    vectors: torch.Tensor,
    bias: torch.Tensor,
    sparse: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    k: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The top k of score + a sparse term, given each row's searched best `positions` by score alone.
    `sparse`: (row, position, value) entries (a pair may repeat: values add up); those pairs are scored exactly
    (query . vector + bias + value) and replace the searched entries of the same pair."""
    n_rows, n = scores.shape[0], vectors.shape[0]
    row, position, value = sparse
    keys, inverse = torch.unique(row * n + position, return_inverse=True)
    total = torch.zeros(len(keys), dtype=scores.dtype).index_add_(0, inverse, value.to(scores.dtype))
    own_row, own_position = keys // n, keys % n
    own_score = (queries[own_row] * vectors[own_position]).sum(1) + bias[own_position] + total
    searched_row = torch.arange(n_rows).repeat_interleave(positions.shape[1])
    searched = positions.reshape(-1)
    keep = ~torch.isin(searched_row * n + searched, keys)
    all_row = torch.cat([searched_row[keep], own_row])
    all_position = torch.cat([searched[keep], own_position])
    all_score = torch.cat([scores.reshape(-1)[keep], own_score])
    order = torch.argsort(all_score, descending=True, stable=True)
    order = order[torch.argsort(all_row[order], stable=True)]  # by row, best first within each
    counts = torch.bincount(all_row, minlength=n_rows)
    place = torch.arange(len(order)) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    k = min(k, int(counts.min()))
    top = order[place < k]
    return all_score[top].view(n_rows, k), all_position[top].view(n_rows, k)
