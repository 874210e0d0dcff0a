"""``iris-sagemaker serve``: the embedded engine behind SageMaker's own HTTP API.

:mod:`.app` routes each request to its service, :mod:`.wire` decodes and encodes it with botocore's
models, :mod:`.s3_over_folder` binds moto's S3 to the local bucket folder, :mod:`.server` binds the port,
holds the root's lock and runs uvicorn.
"""
