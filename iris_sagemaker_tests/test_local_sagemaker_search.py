"""Exact search for faiss.Flat: a kd-tree for low dimensions, faiss's flat scan above; same answers."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from iris_sagemaker.local_sagemaker import knn


def _params(d: int, **extra: str) -> knn.KnnParams:
    hp = {"feature_dim": str(d), "k": "5", "predictor_type": "classifier", "sample_size": "100000"}
    return knn.parse_hyperparameters({**hp, **extra})


def _random(d: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 4, n).astype(np.float32), rng.normal(size=(n, d)).astype(np.float32)


@pytest.mark.parametrize(
    ("d", "extra", "method"),
    [
        (1, {}, "kd-tree"),
        (4, {}, "kd-tree"),
        (knn.KD_TREE_MAX_DIM, {}, "kd-tree"),
        (knn.KD_TREE_MAX_DIM + 1, {}, "flat scan"),
        (64, {}, "flat scan"),
        (4, {"index_metric": "COSINE"}, "faiss"),
        (4, {"index_metric": "INNER_PRODUCT"}, "flat scan"),
        (16, {"dimension_reduction_type": "sign", "dimension_reduction_target": "4"}, "faiss"),
        (4, {"index_type": "faiss.IVFFlat", "faiss_index_ivf_nlists": "4"}, "faiss"),
    ],
)
def test_search_method_per_shape(d, extra, method):
    labels, features = _random(d, knn.KD_TREE_MIN_POINTS, seed=d)
    model = knn.train(_params(d, **extra), labels, features)
    assert model.search_method == method
    reloaded = knn.load_model(knn.dump_model(model))  # the kd-tree is rebuilt from the faiss index
    assert reloaded.search_method == method


@pytest.mark.parametrize("d", [1, 2, 4, knn.KD_TREE_MAX_DIM])
def test_kd_tree_matches_faiss_flat(d):
    labels, features = _random(d, 3000, seed=d)
    _, queries = _random(d, 2000, seed=100 + d)
    model = knn.load_model(knn.dump_model(knn.train(_params(d), labels, features)))
    assert model.search_method == "kd-tree"
    flat = faiss.IndexFlatL2(d)
    flat.add(features)
    want_dist, want_ids = flat.search(queries, 5)
    got_dist, got_ids = model.search(queries)
    assert got_ids.dtype == np.int64 and got_dist.dtype == np.float32
    np.testing.assert_allclose(got_dist, want_dist, rtol=1e-4, atol=1e-5)  # squared L2, as faiss reports
    # Neighbours are the same points, except where two candidates lie at (numerically) equal distance.
    differ = got_ids != want_ids
    assert differ.mean() < 0.01
    true_dist = ((queries[:, None, :] - features[got_ids]) ** 2).sum(axis=2)
    np.testing.assert_allclose(true_dist, got_dist, rtol=1e-4, atol=1e-5)
    same_rows = ~differ.any(axis=1)
    expected = knn.vote(labels[want_ids])
    prediction = model.predict(queries)
    assert (prediction.predicted[same_rows] == expected[same_rows]).all()
    assert (prediction.labels == labels[got_ids]).all()


def test_small_indexes_take_the_flat_scan_and_need_no_scipy():
    labels, features = _random(4, knn.KD_TREE_MIN_POINTS - 1, seed=1)
    assert knn.train(_params(4), labels, features).search_method == "flat scan"


def test_kd_tree_with_k_1_and_duplicate_points(monkeypatch):
    monkeypatch.setattr(knn, "KD_TREE_MIN_POINTS", 1)
    features = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]], np.float32), 3, axis=0)
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2], np.float32)
    model = knn.train(_params(2, k="1"), labels, features)
    assert model.search_method == "kd-tree"
    prediction = model.predict(np.array([[0.1, 0.0], [4.0, 4.0]], np.float32))
    assert prediction.predicted.tolist() == [0.0, 2.0]
    assert prediction.distances.shape == (2, 1)
    assert prediction.distances[:, 0] == pytest.approx([0.01, 2.0], rel=1e-5)


def test_kd_tree_regressor_matches_faiss(monkeypatch):
    monkeypatch.setattr(knn, "KD_TREE_MIN_POINTS", 1)
    labels, features = _random(3, 500, seed=7)
    labels = labels * 1.5
    _, queries = _random(3, 200, seed=8)
    model = knn.train(_params(3, predictor_type="regressor"), labels, features)
    flat = faiss.IndexFlatL2(3)
    flat.add(features)
    _, ids = flat.search(queries, 5)
    same = (np.sort(model.search(queries)[1], axis=1) == np.sort(ids, axis=1)).all(axis=1)
    assert same.mean() > 0.99  # the same five neighbours (a near tie for the fifth aside)
    predicted = model.predict(queries).predicted
    np.testing.assert_allclose(predicted[same], labels[ids].mean(axis=1)[same], rtol=1e-6)


def test_a_row_gets_the_same_neighbours_alone_as_in_a_large_batch() -> None:
    """faiss's flat scan switches to BLAS for batches, which can reorder near-ties; the engine's exact
    scan makes a batch transform and a one-row invocation agree (here d=16, rounded values: many ties)."""
    rng = np.random.default_rng(0)  # with faiss alone, 16 of the first 2000 rows differ
    labels = rng.integers(0, 3, 2000).astype(np.float32)
    points = np.round(rng.normal(5, 1, (2000, 16)), 1).astype(np.float32)
    params = knn.parse_hyperparameters(
        {"feature_dim": "16", "k": "3", "predictor_type": "classifier", "sample_size": "2000"}
    )
    model = knn.train(params, labels, points)
    queries = np.round(rng.normal(5, 1, (20000, 16)), 1).astype(np.float32)
    batch = model.predict(queries)
    for i in range(2000):
        alone = model.predict(queries[i : i + 1])
        assert alone.predicted[0] == batch.predicted[i], i
        np.testing.assert_array_equal(alone.labels[0], batch.labels[i])
    head = queries[:300].astype(np.float64)
    exact = ((head[:, None, :] - points[None].astype(np.float64)) ** 2).sum(axis=2)
    np.testing.assert_allclose(batch.distances[:300], np.sort(exact, axis=1)[:, :3], rtol=1e-6)


def _exact_neighbours(points: np.ndarray, queries: np.ndarray, k: int, l2: bool = True) -> np.ndarray:
    """The k nearest by float64 distance (squared L2, or minus the inner product), ties to the lower id."""
    p, q = points.astype(np.float64), queries.astype(np.float64)
    keys = ((q[:, None, :] - p[None]) ** 2).sum(axis=2) if l2 else -(q @ p.T)
    ids = np.broadcast_to(np.arange(len(points)), keys.shape)
    return np.lexsort((ids, keys), axis=-1)[:, :k]


@pytest.mark.parametrize(
    ("d", "points", "k", "metric", "decimals"),
    [
        (9, 1500, 3, "L2", None),
        pytest.param(64, 3000, 5, "L2", None, marks=pytest.mark.slow),
        (16, 2000, 3, "L2", 0),  # integer coordinates: many exact ties, decided by the lower id
        (3, 40, 40, "L2", 1),  # k = every point; a small index (one group per point)
        (10, 1100, 300, "L2", None),  # more neighbours than groups of 16 points: one group per point
        (12, 5000, 1, "INNER_PRODUCT", None),
        (32, 1200, 7, "INNER_PRODUCT", 1),
    ],
)
def test_flat_scan_is_exact(d, points, k, metric, decimals):
    rng = np.random.default_rng(d * points + k)
    data = rng.normal(3, 2, (points, d))
    queries = rng.normal(3, 2, (700, d))
    if decimals is not None:
        data, queries = np.round(data, decimals), np.round(queries, decimals)
    data, queries = data.astype(np.float32), queries.astype(np.float32)
    data[1::97] = data[::97][: len(data[1::97])]  # duplicate points: equal distances
    hp = {"feature_dim": str(d), "k": str(k), "predictor_type": "regressor", "sample_size": str(points)}
    model = knn.train(knn.parse_hyperparameters({**hp, "index_metric": metric}), np.zeros(points), data)
    assert model.search_method == "flat scan"
    distances, ids = model.search(queries)
    want = _exact_neighbours(data, queries, k, metric == "L2")
    np.testing.assert_array_equal(ids, want)
    q, p = queries.astype(np.float64)[:, None, :], data.astype(np.float64)[want]
    exact = ((q - p) ** 2).sum(axis=2) if metric == "L2" else (q * p).sum(axis=2)
    np.testing.assert_allclose(distances, exact, rtol=1e-6, atol=1e-6)


def test_flat_scan_far_from_the_origin_and_with_huge_queries():
    """Points far from the origin with small gaps between them (the approximate distances cancel badly),
    and queries far outside the data: the error bound widens the candidates, the answer stays exact."""
    rng = np.random.default_rng(5)
    data = (1000 + rng.normal(0, 0.01, (2000, 20))).astype(np.float32)
    queries = np.concatenate(
        [1000 + rng.normal(0, 0.01, (300, 20)), rng.normal(0, 1e6, (20, 20))]
    ).astype(np.float32)
    scan = knn.FlatScan(data, l2=True)
    _, ids = scan.search(queries, 4)
    np.testing.assert_array_equal(ids, _exact_neighbours(data, queries, 4))
    alone = np.concatenate([scan.search(queries[i : i + 1], 4)[1] for i in range(len(queries))])
    np.testing.assert_array_equal(alone, ids)


def test_flat_scan_batches_of_every_size_agree():
    rng = np.random.default_rng(11)
    data = np.round(rng.normal(0, 1, (4000, 64)), 1).astype(np.float32)
    queries = np.round(rng.normal(0, 1, (3000, 64)), 1).astype(np.float32)
    scan = knn.FlatScan(data, l2=True)
    _, whole = scan.search(queries, 3)
    for size in (1, 7, 300, 2048):
        parts = [scan.search(queries[i : i + size], 3)[1] for i in range(0, 600, size)]
        np.testing.assert_array_equal(np.concatenate(parts)[:600], whole[:600])
