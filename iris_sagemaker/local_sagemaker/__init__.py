"""The embedded SageMaker: a boto3-shaped ``sagemaker`` client running the built-in k-NN algorithm
locally (faiss-cpu), for offline runs and tests. No orchestrator imports below this package.

Layout (cut like moto's ``sagemaker``): :mod:`.client` speaks the wire, :mod:`.validation` checks
requests against botocore's service model, :mod:`.records` and :mod:`.jobs` hold state and run
workers, :mod:`.training` / :mod:`.transform` are the job programs, :mod:`.knn` is the algorithm,
:mod:`.formats` the data formats, :mod:`.images` the k-NN image table.
"""

from .client import LocalSageMakerClient
from .images import knn_image_uri

__all__ = ["LocalSageMakerClient", "knn_image_uri"]
