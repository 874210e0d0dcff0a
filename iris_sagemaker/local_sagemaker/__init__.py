"""The embedded SageMaker: boto3-shaped ``sagemaker``, ``sagemaker-runtime`` and ``logs`` clients running
the built-in k-NN algorithm locally (faiss-cpu), for offline runs and tests. No orchestrator imports below
this package; ``iris_sagemaker.serve`` puts these same clients behind SageMaker's HTTP API.

Layout (cut like moto's ``sagemaker``): :mod:`.client` speaks the API, :mod:`.validation` checks
requests against botocore's service model, :mod:`.records` and :mod:`.jobs` hold state and run
workers, :mod:`.training` / :mod:`.transform` are the job programs, :mod:`.endpoints` deploys and
serves models, :mod:`.runtime` answers InvokeEndpoint, :mod:`.cloudwatch` reads the logs as CloudWatch
does, :mod:`.knn` is the algorithm, :mod:`.formats` the data formats, :mod:`.images` the k-NN image table.
"""

from .client import LocalSageMakerClient
from .cloudwatch import LocalLogsClient
from .images import knn_image_uri
from .runtime import LocalSageMakerRuntimeClient

__all__ = ["LocalLogsClient", "LocalSageMakerClient", "LocalSageMakerRuntimeClient", "knn_image_uri"]
