"""The k-NN algorithm, faithful to SageMaker's built-in one: hyperparameters, sampling, dimension
reduction, the faiss index, search, vote/mean, and the ``model.tar.gz`` artifact.

Hyperparameters arrive as strings and are all validated before any data is read; the first bad one
raises :class:`AlgorithmClientError` ("ClientError: ..."), which fails the job.

Model artifact ``model.tar.gz``: ``model_algo-1`` (the faiss index, ``faiss.serialize_index``; any
dimension reduction, padding and normalisation live inside it as an ``IndexPreTransform``),
``model_algo-1.labels`` (raw little-endian float32, one label per indexed point) and
``model_algo-1.json`` (k, predictor_type, dimension reduction, index settings, version). Loading reads
these three members from memory only: nothing is unpickled or extracted to disk.

Exact search (``faiss.Flat``): the answer is the exact k nearest neighbours, computed by the fastest
exact method for the data's shape, and the same for a row whatever batch it comes in. For the L2 metric
without dimension reduction and a low dimension (``feature_dim <= KD_TREE_MAX_DIM``), a kd-tree
(``scipy.spatial.cKDTree``, float64, all cores) is built at load time from the index's own vectors.
Measured on this project's 2-core machine (10k indexed points, k=3, uniform random data, the kd-tree's
worst case): the kd-tree is ~40x faster than faiss's flat scan at d=4, 2-7x at d=6..9, about even at
d=10..11 and slower from d=12 (~7x slower at d=16); against :class:`FlatScan` (below) it is ~15x faster
at d=4, ~2.5x at d=8 and about even at d=10. So the cut is at d=8, where the kd-tree still wins by 2x. Small
indexes (fewer than ``KD_TREE_MIN_POINTS``) skip the kd-tree: a flat scan of them is already cheap, and
the kd-tree's import (scipy.spatial, ~0.4 s) would cost more than it saves. Every other plain flat index
(L2 or inner product, no dimension reduction or cosine normalisation in front) is searched by
:class:`FlatScan`, an exact brute-force scan: one float32 matrix product (BLAS) per block of queries
gives approximate distances; their rounding error has a proven bound, so a threshold derived from them
(the k-th smallest of per-group minima, plus twice the bound) admits every point that can be among the
exact k nearest; only those few candidates are ranked by their float64 distance (summed in a fixed
order), ties going to the lower id. A row therefore gets the same neighbours in a batch transform of
millions as in a one-row InvokeEndpoint (faiss's own flat scan switches to BLAS for batches, which can
reorder near-ties). The artifact is always the faiss index; the kd-tree and the scan's matrices are only
search structures rebuilt from it (``reconstruct_n``), so loading stays pickle-free. Cosine, dimension
reduction and the IVF indexes are searched by faiss.

Prediction rule: classifier = the most frequent label among the k nearest neighbours; on a tie, the
label of the nearest neighbour among those carrying a tied label wins. Regressor = the mean label.
Neighbours faiss could not fill (IVF indexes probing too few lists) are left out of the vote/mean.
"""

from __future__ import annotations

import io
import json
import math
import tarfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import faiss
import numpy as np

from iris_sagemaker.core import knn_hyperparameters
from iris_sagemaker.core.knn_hyperparameters import (  # noqa: F401 - the engine's names for them
    DEFAULT_MINI_BATCH_SIZE,
    INDEX_METRICS,
    INDEX_TYPES,
    OPTIONAL,
    PQ_M_VALUES,
    PREDICTOR_TYPES,
    REDUCTION_TYPES,
    REQUIRED,
    HyperparameterError,
    KnnParams,
)

from .errors import AlgorithmClientError

MODEL_FILE = "model_algo-1"
LABELS_FILE = f"{MODEL_FILE}.labels"
CONFIG_FILE = f"{MODEL_FILE}.json"
FORMAT_VERSION = 1
SAMPLING_SEED = 0
PROJECTION_SEED = 1

PQ_BITS = 8
KD_TREE_MAX_DIM = 8  # exact L2 search by kd-tree up to this dimension, by FlatScan above
KD_TREE_MIN_POINTS = 1000  # ... and from this many indexed points (below, a flat scan costs nothing)
KD_TREE_LEAF_SIZE = 32  # points per kd-tree leaf: 0.8-1.0x the query time of scipy's default 16 at d=4..8
SCAN_GROUP = 16  # points per group whose minimum bounds the k-th distance (FlatScan)
SCAN_CHUNK_POINTS = 8192  # at most this many indexed points per matrix product (few large products
# beat many small ones: each costs the BLAS threads a hand-over, dear on a busy machine)
SCAN_BLOCK_CELLS = 1 << 23  # query rows x indexed points held at once as float32 distances (32 MiB)
SCAN_MAX_ROWS = 2048  # query rows per block
_VOTE_CELLS = 4_000_000  # bound on the (rows, k, k) comparison cube of one voting step
_COLUMN_VOTE_MAX_K = 8  # up to this k, votes compare whole columns instead (k^2 vector operations)


def parse_hyperparameters(hyperparameters: Mapping[str, str]) -> KnnParams:
    """Validate every hyperparameter (in a fixed order) and return them typed; the first bad one fails
    the job (:func:`.knn_hyperparameters.parse_hyperparameters`)."""
    try:
        return knn_hyperparameters.parse_hyperparameters(hyperparameters)
    except HyperparameterError as err:
        raise AlgorithmClientError(str(err)) from None


# ---- sampling -------------------------------------------------------------------------------------


class ReservoirSampler:
    """A seeded uniform sample of ``size`` rows from batches streamed once (all rows if fewer).

    Memory holds at most ``size`` rows, never the whole data set. Rows keep their input order while the
    data set is smaller than the sample.
    """

    def __init__(self, size: int, seed: int = SAMPLING_SEED) -> None:
        self.size = size
        self.seen = 0
        self._rng = np.random.default_rng(seed)
        self._fill: list[tuple[np.ndarray, np.ndarray]] = []
        self._labels: np.ndarray | None = None
        self._features: np.ndarray | None = None

    def add(self, labels: np.ndarray, features: np.ndarray) -> None:
        take = max(0, min(len(labels), self.size - self.seen))
        if take:
            self._fill.append((labels[:take].astype(np.float32), features[:take].astype(np.float32)))
        self.seen += take
        if self.seen >= self.size and self._labels is None:
            self._labels, self._features = self._concat()
        rest_labels, rest_features = labels[take:], features[take:]
        if len(rest_labels):
            self._replace(rest_labels, rest_features)

    def _replace(self, labels: np.ndarray, features: np.ndarray) -> None:
        assert self._labels is not None and self._features is not None
        positions = np.arange(self.seen, self.seen + len(labels))
        slots = self._rng.integers(0, positions + 1)
        self.seen += len(labels)
        chosen = np.nonzero(slots < self.size)[0]
        if not len(chosen):
            return
        # Several rows may land on one slot: the last one wins, as in the sequential algorithm.
        reversed_slots = slots[chosen][::-1]
        _, first_in_reversed = np.unique(reversed_slots, return_index=True)
        winners = chosen[::-1][first_in_reversed]
        self._labels[slots[winners]] = labels[winners]
        self._features[slots[winners]] = features[winners]

    def _concat(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._fill:
            return np.empty(0, np.float32), np.empty((0, 0), np.float32)
        labels = np.concatenate([lab for lab, _ in self._fill])
        features = np.concatenate([feat for _, feat in self._fill])
        self._fill = []
        return labels, features

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        if self._labels is None:
            return self._concat()
        assert self._features is not None
        return self._labels, self._features


# ---- the model ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelConfig:
    k: int
    predictor_type: str
    feature_dim: int
    dimension_reduction_type: str | None
    dimension_reduction_target: int | None
    index_type: str
    index_metric: str
    faiss_index_ivf_nlists: int | None
    faiss_index_pq_m: int | None
    training_points: int
    version: int = FORMAT_VERSION


@dataclass(frozen=True)
class Prediction:
    predicted: np.ndarray  # (n,) float32
    distances: np.ndarray  # (n, k) nearest first
    labels: np.ndarray  # (n, k) the neighbours' labels (NaN where faiss found none)


class KnnModel:
    def __init__(self, index: faiss.Index, labels: np.ndarray, config: ModelConfig) -> None:
        if index.ntotal != len(labels):
            raise AlgorithmClientError(
                f"the model is inconsistent: the index holds {index.ntotal} points but there are "
                f"{len(labels)} labels"
            )
        self.index = index
        self.labels = np.ascontiguousarray(labels, dtype=np.float32)
        self.config = config
        self._tree: Any = None  # a scipy.spatial.cKDTree when use_kd_tree()
        self._scan: FlatScan | None = None  # the exact scan of any other plain flat index
        flat = faiss.downcast_index(index)
        if isinstance(flat, faiss.IndexFlat) and flat.ntotal:
            if use_kd_tree(config, index.ntotal) and flat.metric_type == faiss.METRIC_L2:
                from scipy.spatial import cKDTree

                points = flat.reconstruct_n(0, flat.ntotal).astype(np.float64)
                self._tree = cKDTree(points, leafsize=KD_TREE_LEAF_SIZE)
            else:
                self._scan = FlatScan(flat.reconstruct_n(0, flat.ntotal), flat.metric_type == faiss.METRIC_L2)

    @property
    def search_method(self) -> str:
        """``"kd-tree"``, ``"flat scan"`` (:class:`FlatScan`) or ``"faiss"``: how :meth:`search` finds
        neighbours."""
        if self._tree is not None:
            return "kd-tree"
        return "flat scan" if self._scan is not None else "faiss"

    def search(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distances, ids) of the k nearest indexed points, nearest first (faiss's conventions:
        squared L2 distances; similarities for INNER_PRODUCT / COSINE; id -1 where none was found)."""
        k = self.config.k
        if self._scan is not None:
            keys, ids = self._scan.search(features, k)
            distances = keys if self._scan.l2 else -keys
            return distances.astype(np.float32), ids
        if self._tree is None:
            distances, ids = self.index.search(np.ascontiguousarray(features, dtype=np.float32), k)
            return distances, ids
        dist, ids = self._tree.query(features.astype(np.float64), k=k, workers=-1)
        dist, ids = dist.reshape(len(features), k), ids.reshape(len(features), k)
        return np.square(dist).astype(np.float32), ids.astype(np.int64)

    def predict(self, features: np.ndarray) -> Prediction:
        if features.ndim != 2 or features.shape[1] != self.config.feature_dim:
            raise ValueError(f"expected (n, {self.config.feature_dim}) features, got {features.shape}")
        if not len(features):
            empty = np.empty((0, self.config.k), np.float32)
            return Prediction(np.empty(0, np.float32), empty, empty)
        distances, ids = self.search(features)
        if self._tree is None and self._scan is None:
            neighbours = np.where(ids >= 0, self.labels[np.clip(ids, 0, None)], np.float32(np.nan))
        else:  # exact searches always fill all k (k <= points is checked at training)
            neighbours = self.labels[ids]
        predicted = vote(neighbours) if self.config.predictor_type == "classifier" else _mean(neighbours)
        return Prediction(predicted, distances, neighbours)


_UNIT_ROUNDOFF = 2.0**-24  # float32's


class FlatScan:
    """Exact k nearest neighbours of a flat index (L2 or inner product) by brute force, the same for a
    row whatever batch it is searched in.

    Per block of query rows, one float32 matrix product per chunk of indexed points gives every
    approximate distance: for L2 ``|p|^2 - 2 q.p`` (the query's own norm, the same for all points of a
    row, is left out), for the inner product ``-q.p``. The indexed points are split into groups of
    :data:`SCAN_GROUP`; the k-th smallest of a row's group minima, ``tau``, bounds its k-th smallest
    approximate distance from above (k distinct points reach those minima). A dot product of n terms
    computed in float32 in any order, with or without fused multiply-adds, is off by at most
    ``n u / (1 - n u)`` times the sum of the terms' magnitudes (u = 2^-24), so with ``err`` that bound
    for the row, the exact k-th distance is at most ``tau + err`` and no point whose approximate
    distance exceeds ``tau + 2 err`` can be among the exact k nearest (nor tie with the k-th). The
    points under that threshold (usually about k of them) are ranked by their distance in float64,
    computed elementwise and summed in a fixed pairwise order, then by id. So the answer depends only
    on the row: neither on the batch around it nor on how the BLAS library ordered its sums.
    """

    def __init__(self, vectors: np.ndarray, l2: bool) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.l2 = l2
        points, dim = self.vectors.shape
        self.points, self.dim = points, dim
        wide = self.vectors.astype(np.float64)
        norms = np.einsum("ij,ij->i", wide, wide)
        self._max_norm_sq = float(norms.max()) if points else 0.0
        self._group = SCAN_GROUP if points >= SCAN_GROUP * 64 else 1
        self._chunks = -(-points // SCAN_CHUNK_POINTS)
        chunk = -(-points // (self._chunks * self._group)) * self._group  # even chunks, little padding
        self._chunk = chunk
        # Each chunk as a (dim + 1, chunk) matrix: [-2p | |p|^2] (L2) or [-p | 0] (inner product), so that
        # [q | 1] times it gives the approximate distances at once. Padding points are infinitely far.
        augmented = np.zeros((self._chunks * chunk, dim + 1), np.float32)
        augmented[:points, :dim] = self.vectors * (-2.0 if l2 else -1.0)
        if l2:
            augmented[:points, dim] = norms
        augmented[points:, dim] = np.inf
        self._matrices = np.ascontiguousarray(
            augmented.reshape(self._chunks, chunk, dim + 1).transpose(0, 2, 1)
        )
        self._rows = int(min(SCAN_MAX_ROWS, max(1, SCAN_BLOCK_CELLS // (self._chunks * chunk))))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(keys, ids) of the k nearest points of each row, nearest first: keys are the exact float64
        squared L2 distances, or minus the inner products."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        keys = np.empty((len(queries), k), np.float64)
        ids = np.empty((len(queries), k), np.int64)
        for start in range(0, len(queries), self._rows):
            block = slice(start, start + self._rows)
            ids[block], keys[block] = self._search_block(queries[block], k)
        return keys, ids

    def _search_block(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        rows, dim, chunk = len(queries), self.dim, self._chunk
        group = self._group if self._chunks * (chunk // self._group) >= k else 1  # k groups at least
        per_chunk = chunk // group
        augmented = np.empty((rows, dim + 1), np.float32)
        augmented[:, :dim] = queries
        augmented[:, dim] = 1.0
        approx = np.empty((self._chunks, rows, chunk), np.float32)
        minima = np.empty((rows, self._chunks, per_chunk), np.float32)
        for c in range(self._chunks):
            np.matmul(augmented, self._matrices[c], out=approx[c])
            # Group i of a chunk: its points i, i + per_chunk, i + 2 per_chunk, ... (one vector min).
            np.minimum.reduce(approx[c].reshape(rows, group, per_chunk), axis=1, out=minima[:, c])
        minima = minima.reshape(rows, -1)
        tau = np.partition(minima, k - 1, axis=1)[:, k - 1].astype(np.float64)
        threshold = tau + 2.0 * self._error_bound(queries)
        # The groups that can hold a candidate, then their points under the threshold.
        row, column = np.nonzero(minima <= threshold[:, None])
        chunk_of, first = np.divmod(column, per_chunk)
        within = first[:, None] + per_chunk * np.arange(group)
        admitted = approx[chunk_of[:, None], row[:, None], within] <= threshold[row, None]
        ids = (within + (chunk_of * chunk)[:, None])[admitted]
        row = np.broadcast_to(row[:, None], admitted.shape)[admitted]
        if ids.size and ids.max() >= self.points:  # padding, admitted only by an infinite threshold
            keep = ids < self.points
            ids, row = ids[keep], row[keep]
        keys = self._exact_keys(queries, row, ids)
        order = np.lexsort((ids, keys, row))
        counts = np.bincount(row, minlength=rows)
        picked = order[(np.cumsum(counts) - counts)[:, None] + np.arange(k)]
        return ids[picked], keys[picked]

    def _error_bound(self, queries: np.ndarray) -> np.ndarray:
        """Per row, a bound on how far an approximate distance is from the exact one (shifted by the
        row's own |q|^2 for L2), plus what the float64 keys' own rounding and float32's underflow may
        add, with 1% to spare."""
        wide = queries.astype(np.float64)
        query_norm = np.sqrt(np.einsum("ij,ij->i", wide, wide))
        largest = math.sqrt(self._max_norm_sq)
        terms = self.dim + 2
        gamma = terms * _UNIT_ROUNDOFF / (1 - terms * _UNIT_ROUNDOFF) * 1.01
        keys = 2.0 * terms * 2.0**-53 * 1.01 * (query_norm + largest) ** 2
        tiny = 2.0 * terms * 2.0**-149  # products below float32's normal range lose up to this, each
        if self.l2:  # |sum| <= 2 |q| |p| + |p|^2, and |p|^2 itself was rounded to float32
            return gamma * (2.0 * query_norm * largest + 2.0 * self._max_norm_sq) + keys + tiny
        return gamma * query_norm * largest + keys + tiny

    def _exact_keys(self, queries: np.ndarray, row: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """float64 squared distances (L2) or minus inner products of the (row, id) pairs: elementwise,
        then summed pairwise in a fixed order, so a pair's key never depends on the others."""
        keys = np.empty(len(ids), np.float64)
        step = max(1, (1 << 20) // max(1, self.dim))
        for start in range(0, len(ids), step):
            part = slice(start, start + step)
            terms = self.vectors[ids[part]].astype(np.float64)
            query = queries[row[part]].astype(np.float64)
            if self.l2:
                terms -= query
                terms *= terms
            else:
                terms *= query
            keys[part] = _pairwise_sum(terms)
        return keys if self.l2 else -keys


def _pairwise_sum(terms: np.ndarray) -> np.ndarray:
    """Row sums of a 2-D array, adding columns in halves (a fixed order, whatever the number of rows)."""
    width = terms.shape[1]
    while width > 1:
        half = width // 2
        summed = terms[:, :half] + terms[:, half : 2 * half]
        if width % 2:
            summed[:, 0] += terms[:, 2 * half]
        terms, width = summed, half
    return terms[:, 0] if width else np.zeros(len(terms))


def use_kd_tree(config: ModelConfig, points: int) -> bool:
    """Whether the exact search of this model's shape is fastest by kd-tree (see the module notes)."""
    return (
        points >= KD_TREE_MIN_POINTS
        and config.index_type == "faiss.Flat"
        and config.index_metric == "L2"
        and config.dimension_reduction_type is None
        and config.feature_dim <= KD_TREE_MAX_DIM
    )


def vote(neighbours: np.ndarray) -> np.ndarray:
    """Most frequent label per row; ties go to the tied label seen first, i.e. the nearest one."""
    rows, k = neighbours.shape
    if k <= _COLUMN_VOTE_MAX_K:
        return _vote_by_columns(neighbours)
    out = np.empty(rows, np.float32)
    step = max(1, _VOTE_CELLS // max(1, k * k))
    for start in range(0, rows, step):
        block = neighbours[start : start + step]
        counts = (block[:, :, None] == block[:, None, :]).sum(axis=2)  # NaN never matches: count 0
        winner = counts.argmax(axis=1)  # argmax returns the first (nearest) position of the maximum
        out[start : start + step] = block[np.arange(len(block)), winner]
    return out


def _vote_by_columns(neighbours: np.ndarray) -> np.ndarray:
    """:func:`vote` for a small k, one whole column at a time (k^2 comparisons of n rows, no (n, k, k)
    cube): the same counts (NaN matches nothing, not even itself) and the same first-maximum rule."""
    columns = [np.ascontiguousarray(neighbours[:, i], dtype=np.float32) for i in range(neighbours.shape[1])]

    def count(column: np.ndarray) -> np.ndarray:
        total = np.zeros(len(column), np.int16)
        for other in columns:
            total += column == other
        return total

    winner, best = columns[0].copy(), count(columns[0])
    for column in columns[1:]:
        votes = count(column)
        np.copyto(winner, column, where=votes > best)  # strictly more: the nearer label keeps a tie
        np.maximum(best, votes, out=best)
    return winner


def _mean(neighbours: np.ndarray) -> np.ndarray:
    valid = ~np.isnan(neighbours)
    sums = np.where(valid, neighbours, 0).astype(np.float64).sum(axis=1)
    counts = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts).astype(np.float32)


# ---- training -------------------------------------------------------------------------------------


def train(params: KnnParams, labels: np.ndarray, features: np.ndarray) -> KnnModel:
    """Build the index over the sampled points."""
    points = len(labels)
    if points == 0:
        raise AlgorithmClientError("the train channel holds no data rows.")
    if params.k > points:
        raise AlgorithmClientError(
            f"Invalid hyperparameter k={params.k}: it exceeds the number of sampled training points "
            f"({points})."
        )
    matrix, dim = _input_transform(params)
    base = _base_index(params, dim, points)
    index: faiss.Index = base
    keep_alive: list[object] = []
    if matrix is not None or params.index_metric == "COSINE":
        chain = faiss.IndexPreTransform(base)
        if params.index_metric == "COSINE":
            norm = faiss.NormalizationTransform(dim, 2.0)
            chain.prepend_transform(norm)
            keep_alive.append(norm)
        if matrix is not None:
            chain.prepend_transform(_linear_transform(matrix))
        index = chain
    data = np.ascontiguousarray(features, dtype=np.float32)
    if not index.is_trained:
        index.train(data)
    index.add(data)
    # Round-trip through faiss's own format: the returned model is exactly what gets saved, and owns
    # all of its parts.
    restored = faiss.deserialize_index(faiss.serialize_index(index))
    del keep_alive, index, base
    return KnnModel(restored, labels, _config(params, points))


def _config(params: KnnParams, points: int) -> ModelConfig:
    return ModelConfig(
        k=params.k,
        predictor_type=params.predictor_type,
        feature_dim=params.feature_dim,
        dimension_reduction_type=params.dimension_reduction_type,
        dimension_reduction_target=params.dimension_reduction_target,
        index_type=params.index_type,
        index_metric=params.index_metric,
        faiss_index_ivf_nlists=params.faiss_index_ivf_nlists,
        faiss_index_pq_m=params.faiss_index_pq_m,
        training_points=points,
    )


def _input_transform(params: KnnParams) -> tuple[np.ndarray | None, int]:
    """The (dim, feature_dim) matrix applied before indexing (reduction and/or PQ padding), if any."""
    d = params.feature_dim
    m = params.faiss_index_pq_m if params.index_type == "faiss.IVFPQ" else None
    if params.dimension_reduction_type is not None:
        target = params.dimension_reduction_target or d
        if m:  # FAISS needs m to divide the dimension: SageMaker raises the target to a multiple
            target = -(-target // m) * m
        rng = np.random.default_rng(PROJECTION_SEED)
        if params.dimension_reduction_type == "sign":
            return _sign_projection(rng, d, target), target
        return _fjlt_projection(rng, d, target), target
    if m and d % m:
        padded = -(-d // m) * m  # zero-pad, as SageMaker does without dimension reduction
        return np.eye(padded, d, dtype=np.float32), padded
    return None, d


def _sign_projection(rng: np.random.Generator, d: int, target: int) -> np.ndarray:
    """Random sign projection: entries +-1/sqrt(target) (a Johnson-Lindenstrauss embedding)."""
    signs = rng.choice(np.array([-1.0, 1.0]), size=(target, d))
    return (signs / math.sqrt(target)).astype(np.float32)


def _fjlt_projection(rng: np.random.Generator, d: int, target: int) -> np.ndarray:
    """Fast JL transform (subsampled randomized Hadamard), materialised as its dense matrix."""
    size = 1 << max(0, (d - 1).bit_length())
    hadamard = np.ones((1, 1))
    while hadamard.shape[0] < size:
        hadamard = np.block([[hadamard, hadamard], [hadamard, -hadamard]])
    signs = rng.choice(np.array([-1.0, 1.0]), size=d)
    rows = rng.choice(size, size=target, replace=target > size)
    matrix = hadamard[rows][:, :d] * signs[None, :] / math.sqrt(size) * math.sqrt(size / target)
    return matrix.astype(np.float32)


def _linear_transform(matrix: np.ndarray) -> faiss.LinearTransform:
    out_dim, in_dim = matrix.shape
    transform = faiss.LinearTransform(in_dim, out_dim, False)
    faiss.copy_array_to_vector(np.ascontiguousarray(matrix, dtype=np.float32).ravel(), transform.A)
    transform.is_trained = True
    return transform


def _base_index(params: KnnParams, dim: int, points: int) -> faiss.Index:
    metric = faiss.METRIC_L2 if params.index_metric == "L2" else faiss.METRIC_INNER_PRODUCT
    if params.index_type == "faiss.Flat":
        return faiss.IndexFlat(dim, metric)
    nlists = params.faiss_index_ivf_nlists or 1
    if nlists > points:
        raise AlgorithmClientError(
            f"Invalid hyperparameter faiss_index_ivf_nlists={nlists}: it exceeds the number of sampled "
            f"training points ({points}); use fewer lists or 'auto' with a smaller sample_size."
        )
    quantizer = faiss.IndexFlat(dim, metric)
    if params.index_type == "faiss.IVFFlat":
        index = faiss.IndexIVFFlat(quantizer, dim, nlists, metric)
    else:
        if points < (1 << PQ_BITS):
            raise AlgorithmClientError(
                f"index_type faiss.IVFPQ needs at least {1 << PQ_BITS} sampled training points to train "
                f"its {PQ_BITS}-bit codebooks; got {points}. Use faiss.Flat or faiss.IVFFlat."
            )
        index = faiss.IndexIVFPQ(quantizer, dim, nlists, params.faiss_index_pq_m or 1, PQ_BITS)
    index.own_fields = True
    quantizer.this.disown()
    # Probe enough lists to make small indexes nearly exact; saved with the index.
    index.nprobe = min(nlists, max(8, math.isqrt(nlists)))
    return index


# ---- evaluation -----------------------------------------------------------------------------------


def evaluate(
    model: KnnModel, batches: Iterable[tuple[np.ndarray, np.ndarray]], checkpoint: Callable[[], None]
) -> tuple[str, float] | None:
    """``test:accuracy`` (classifier) or ``test:mse`` (regressor) over labelled batches."""
    total = 0
    score = 0.0
    for labels, features in batches:
        checkpoint()
        predicted = model.predict(features).predicted.astype(np.float64)
        truth = labels.astype(np.float64)
        if model.config.predictor_type == "classifier":
            score += float((predicted == truth).sum())
        else:
            score += float(((predicted - truth) ** 2).sum())
        total += len(labels)
    if not total:
        return None
    name = "test:accuracy" if model.config.predictor_type == "classifier" else "test:mse"
    return name, score / total


# ---- the artifact ---------------------------------------------------------------------------------


def dump_model(model: KnnModel) -> bytes:
    """``model.tar.gz`` bytes (deterministic: fixed member order, mtimes and modes)."""
    members = {
        MODEL_FILE: faiss.serialize_index(model.index).tobytes(),
        LABELS_FILE: model.labels.astype("<f4").tobytes(),
        CONFIG_FILE: json.dumps(asdict(model.config), indent=1, sort_keys=True).encode("utf-8"),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def load_model(data: bytes) -> KnnModel:
    """Read a ``model.tar.gz`` written by :func:`dump_model` (faiss's format and raw floats only)."""
    try:
        members = _read_members(data)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise AlgorithmClientError(f"the model artifact is not a readable model.tar.gz: {err}") from None
    missing = [name for name in (MODEL_FILE, LABELS_FILE, CONFIG_FILE) if name not in members]
    if missing:
        raise AlgorithmClientError(f"the model artifact lacks {', '.join(missing)}; it was not made by k-NN")
    config = _parse_config(members[CONFIG_FILE])
    try:
        index = faiss.deserialize_index(np.frombuffer(members[MODEL_FILE], dtype=np.uint8))
    except RuntimeError as err:
        raise AlgorithmClientError(f"the model's faiss index cannot be read: {err}") from None
    raw_labels = members[LABELS_FILE]
    if len(raw_labels) % 4:
        raise AlgorithmClientError(
            f"the model's {LABELS_FILE} holds {len(raw_labels)} bytes, not whole float32 labels"
        )
    if config.k > index.ntotal:
        raise AlgorithmClientError(
            f"the model's {CONFIG_FILE} asks for k={config.k} neighbours but its index holds {index.ntotal} "
            "points"
        )
    labels = np.frombuffer(raw_labels, dtype="<f4").astype(np.float32)
    return KnnModel(index, labels, config)


def _read_members(data: bytes) -> dict[str, bytes]:
    wanted = {MODEL_FILE, LABELS_FILE, CONFIG_FILE}
    members: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for info in tar:
            if info.name in wanted and info.isfile():
                fh = tar.extractfile(info)
                if fh is not None:
                    members[info.name] = fh.read()
    return members


def _parse_config(raw: bytes) -> ModelConfig:
    try:
        values = json.loads(raw)
        if values.get("version") != FORMAT_VERSION:
            raise ValueError(f"unsupported model format version {values.get('version')!r}")
        config = ModelConfig(**values)
    except (ValueError, TypeError, AttributeError) as err:
        raise AlgorithmClientError(f"the model's {CONFIG_FILE} is invalid: {err}") from None
    if config.predictor_type not in PREDICTOR_TYPES or config.k <= 0 or config.feature_dim <= 0:
        raise AlgorithmClientError(f"the model's {CONFIG_FILE} is invalid: {values}")
    return config
