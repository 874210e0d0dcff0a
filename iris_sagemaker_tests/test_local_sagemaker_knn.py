"""The k-NN algorithm: hyperparameters, sampling, index types, prediction rules, the artifact."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest

from iris_sagemaker.local_sagemaker import knn
from iris_sagemaker.local_sagemaker.errors import AlgorithmClientError
from iris_sagemaker.local_sagemaker.testing import iris_like

BASE = {"feature_dim": "4", "k": "3", "predictor_type": "classifier", "sample_size": "150"}


def _params(**changes: str) -> knn.KnnParams:
    return knn.parse_hyperparameters({**BASE, **changes})


def test_defaults():
    params = _params()
    assert params == knn.KnnParams(feature_dim=4, k=3, predictor_type="classifier", sample_size=150)
    assert (
        params.index_type == "faiss.Flat" and params.index_metric == "L2" and params.mini_batch_size == 5000
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"feature_dim": "four"},
            "ClientError: Invalid hyperparameter feature_dim='four': must be a positive integer.",
        ),
        ({"k": "0"}, "ClientError: Invalid hyperparameter k='0': must be a positive integer."),
        (
            {"predictor_type": "clustering"},
            "ClientError: Invalid hyperparameter predictor_type='clustering': allowed values are classifier, "
            "regressor.",
        ),
        (
            {"sample_size": "-5"},
            "ClientError: Invalid hyperparameter sample_size='-5': must be a positive integer.",
        ),
        (
            {"dimension_reduction_type": "pca", "dimension_reduction_target": "2"},
            "ClientError: Invalid hyperparameter dimension_reduction_type='pca': "
            "allowed values are sign, fjlt.",
        ),
        (
            {"dimension_reduction_type": "sign", "dimension_reduction_target": "4"},
            "ClientError: Invalid hyperparameter dimension_reduction_target='4': "
            "allowed values are integers with 0 < dimension_reduction_target < feature_dim (4).",
        ),
        (
            {"dimension_reduction_type": "sign"},
            "ClientError: Missing hyperparameter dimension_reduction_target: required when "
            "dimension_reduction_type is set",
        ),
        (
            {"dimension_reduction_target": "2"},
            "ClientError: Invalid hyperparameter dimension_reduction_target: "
            "it requires dimension_reduction_type",
        ),
        (
            {"index_type": "faiss.HNSW"},
            "ClientError: Invalid hyperparameter index_type='faiss.HNSW': allowed values are faiss.Flat, "
            "faiss.IVFFlat, faiss.IVFPQ.",
        ),
        (
            {"index_metric": "L1"},
            "ClientError: Invalid hyperparameter index_metric='L1': "
            "allowed values are L2, INNER_PRODUCT, COSINE.",
        ),
        (
            {"index_type": "faiss.IVFPQ", "index_metric": "COSINE"},
            "ClientError: Invalid hyperparameter index_metric='COSINE': "
            "index_type faiss.IVFPQ supports only L2.",
        ),
        (
            {"index_type": "faiss.IVFPQ", "index_metric": "INNER_PRODUCT"},
            "ClientError: Invalid hyperparameter index_metric='INNER_PRODUCT': "
            "index_type faiss.IVFPQ supports only L2.",
        ),
        (
            {"dimension_reduction_type": "fjlt", "dimension_reduction_target": "two"},
            "ClientError: Invalid hyperparameter dimension_reduction_target='two': "
            "must be a positive integer.",
        ),
        (
            {"faiss_index_ivf_nlists": "0"},
            "ClientError: Invalid hyperparameter faiss_index_ivf_nlists='0': "
            "allowed values are 'auto' or a positive integer.",
        ),
        (
            {"sample_size": "1.5"},
            "ClientError: Invalid hyperparameter sample_size='1.5': must be a positive integer.",
        ),
        (
            {"faiss_index_ivf_nlists": "many"},
            "ClientError: Invalid hyperparameter faiss_index_ivf_nlists='many': "
            "allowed values are 'auto' or a positive integer.",
        ),
        (
            {"faiss_index_pq_m": "5"},
            "ClientError: Invalid hyperparameter faiss_index_pq_m='5': allowed values are 1, 2, 3, 4, 8, 12,",
        ),
        (
            {"mini_batch_size": "0"},
            "ClientError: Invalid hyperparameter mini_batch_size='0': must be a positive",
        ),
        ({"epochs": "3"}, "ClientError: Additional hyperparameters are not allowed ('epochs' unexpected)"),
    ],
)
def test_bad_hyperparameters(changes, message):
    with pytest.raises(AlgorithmClientError) as excinfo:
        _params(**changes)
    assert str(excinfo.value).startswith(message)


def test_missing_required_hyperparameter():
    with pytest.raises(AlgorithmClientError, match="ClientError: Missing required hyperparameter 'k'"):
        knn.parse_hyperparameters({"feature_dim": "4", "predictor_type": "classifier", "sample_size": "1"})


def test_first_bad_hyperparameter_is_named():
    with pytest.raises(AlgorithmClientError, match="feature_dim"):
        _params(feature_dim="x", k="y")


def test_nlists_auto_and_explicit():
    assert _params(index_type="faiss.IVFFlat").faiss_index_ivf_nlists == 12  # isqrt(150)
    assert _params(index_type="faiss.IVFFlat", faiss_index_ivf_nlists="5").faiss_index_ivf_nlists == 5
    assert _params(faiss_index_ivf_nlists="5").faiss_index_ivf_nlists is None  # not an IVF index


def test_vote_ties_go_to_the_nearest_tied_label():
    neighbours = np.array(
        [[1, 2, 2, 1, 3], [3, 1, 2, 4, 5], [np.nan, 1, 1, 2, 2], [2, 1, 1, 2, 1]], dtype=np.float32
    )
    assert knn.vote(neighbours).tolist() == [1.0, 3.0, 1.0, 1.0]


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8, 9])
def test_the_column_vote_counts_as_the_comparison_cube(k):
    """Small k votes column by column; it must pick what the (rows, k, k) comparison cube picks, NaN
    (a neighbour an IVF index did not fill) matching nothing, ties to the nearer label."""
    rng = np.random.default_rng(k)
    neighbours = rng.integers(0, 3, (20000, k)).astype(np.float32)
    neighbours[rng.random(neighbours.shape) < 0.05] = np.nan
    counts = (neighbours[:, :, None] == neighbours[:, None, :]).sum(axis=2)
    expected = neighbours[np.arange(len(neighbours)), counts.argmax(axis=1)]
    got = knn.vote(neighbours)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_classifier_on_iris_like_data():
    labels, features = iris_like()
    model = knn.train(_params(), labels[:105], features[:105])
    assert (model.predict(features[105:]).predicted == labels[105:]).mean() >= 0.95


def test_regressor_predicts_the_mean_label():
    features = np.array([[0.0], [1.0], [2.0], [10.0]], dtype=np.float32)
    labels = np.array([1.0, 2.0, 4.5, 100.0], dtype=np.float32)
    params = knn.parse_hyperparameters(
        {"feature_dim": "1", "k": "3", "predictor_type": "regressor", "sample_size": "10"}
    )
    prediction = knn.train(params, labels, features).predict(np.array([[0.9]], dtype=np.float32))
    assert prediction.predicted.tolist() == pytest.approx([2.5])
    assert prediction.labels.tolist() == [[2.0, 1.0, 4.5]]
    assert np.all(np.diff(prediction.distances[0]) >= 0)


def test_k_larger_than_the_data():
    labels, features = iris_like(rows_per_class=1)
    with pytest.raises(
        AlgorithmClientError, match="Invalid hyperparameter k=5: it exceeds the number of sampled"
    ):
        knn.train(_params(k="5"), labels, features)


@pytest.mark.parametrize(
    "changes",
    [
        {"index_metric": "COSINE"},
        {"index_metric": "INNER_PRODUCT"},
        {"dimension_reduction_type": "sign", "dimension_reduction_target": "3"},
        {"dimension_reduction_type": "fjlt", "dimension_reduction_target": "3"},
        {"index_type": "faiss.IVFFlat", "faiss_index_ivf_nlists": "4"},
        {"index_type": "faiss.IVFPQ", "faiss_index_pq_m": "3", "faiss_index_ivf_nlists": "4"},
    ],
)
def test_other_indexes_round_trip(changes):
    labels, features = iris_like(rows_per_class=100)
    params = _params(**{**changes, "sample_size": "300"})
    model = knn.load_model(knn.dump_model(knn.train(params, labels, features)))
    assert model.config.index_type == params.index_type
    prediction = model.predict(features)
    if params.index_metric == "INNER_PRODUCT":  # uncentred data: the largest dot product wins, not accuracy
        best = (features @ features.T).max(axis=1)
        assert prediction.distances[:, 0] == pytest.approx(best, rel=1e-5)
        assert np.all(np.diff(prediction.distances, axis=1) <= 0)
    else:
        assert (prediction.predicted == labels).mean() >= 0.9


def test_ivfpq_needs_enough_points():
    labels, features = iris_like(rows_per_class=10)
    with pytest.raises(
        AlgorithmClientError, match=r"faiss\.IVFPQ needs at least 256 sampled training points"
    ):
        knn.train(_params(index_type="faiss.IVFPQ", faiss_index_ivf_nlists="2"), labels, features)


def test_nlists_larger_than_the_data():
    labels, features = iris_like(rows_per_class=2)
    with pytest.raises(
        AlgorithmClientError, match="faiss_index_ivf_nlists=12: it exceeds the number of sampled"
    ):
        knn.train(_params(index_type="faiss.IVFFlat"), labels, features)


def test_reservoir_keeps_everything_when_smaller():
    sampler = knn.ReservoirSampler(10)
    sampler.add(np.arange(4, dtype=np.float32), np.zeros((4, 2)))
    sampler.add(np.arange(4, 7, dtype=np.float32), np.zeros((3, 2)))
    labels, features = sampler.result()
    assert labels.tolist() == list(range(7)) and features.shape == (7, 2)


def test_reservoir_is_seeded_and_uniformish():
    def sample() -> np.ndarray:
        sampler = knn.ReservoirSampler(100)
        for start in range(0, 10_000, 700):
            stop = min(start + 700, 10_000)
            ids = np.arange(start, stop, dtype=np.float32)
            sampler.add(ids, ids[:, None])
        return sampler.result()[0]

    first, second = sample(), sample()
    assert first.tolist() == second.tolist()
    assert len(set(first.tolist())) == 100
    assert 2000 < first.mean() < 8000  # drawn from the whole stream, not only its head


def test_artifact_layout_and_no_pickle():
    labels, features = iris_like()
    data = knn.dump_model(knn.train(_params(), labels, features))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        names = tar.getnames()
        config = json.loads(tar.extractfile("model_algo-1.json").read())
        raw_labels = tar.extractfile("model_algo-1.labels").read()
    assert names == ["model_algo-1", "model_algo-1.labels", "model_algo-1.json"]
    assert config["k"] == 3 and config["predictor_type"] == "classifier" and config["version"] == 1
    assert config["dimension_reduction_type"] is None
    assert np.frombuffer(raw_labels, dtype="<f4").tolist() == labels.tolist()
    assert knn.dump_model(knn.train(_params(), labels, features)) == data  # deterministic


def test_load_rejects_foreign_artifacts():
    with pytest.raises(AlgorithmClientError, match=r"not a readable model\.tar\.gz"):
        knn.load_model(b"not a tarball")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("model_algo-1")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    with pytest.raises(AlgorithmClientError, match=r"lacks model_algo-1\.labels, model_algo-1\.json"):
        knn.load_model(buffer.getvalue())


def test_a_crafted_artifact_is_refused_before_anything_is_allocated() -> None:
    labels, features = iris_like()
    params = knn.parse_hyperparameters(
        {"feature_dim": "4", "k": "3", "predictor_type": "classifier", "sample_size": "150"}
    )
    good = knn.dump_model(knn.train(params, labels, features))

    def crafted(change) -> bytes:
        with tarfile.open(fileobj=io.BytesIO(good), mode="r:gz") as tar:
            members = {info.name: tar.extractfile(info).read() for info in tar}
        change(members)
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w:gz") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return out.getvalue()

    def huge_k(members) -> None:
        config = json.loads(members[knn.CONFIG_FILE])
        members[knn.CONFIG_FILE] = json.dumps({**config, "k": 10**9}).encode()

    def odd_labels(members) -> None:
        members[knn.LABELS_FILE] = members[knn.LABELS_FILE][:-1]

    with pytest.raises(
        AlgorithmClientError, match="asks for k=1000000000 neighbours but its index holds 150"
    ):
        knn.load_model(crafted(huge_k))
    with pytest.raises(AlgorithmClientError, match="holds 599 bytes, not whole float32 labels"):
        knn.load_model(crafted(odd_labels))
