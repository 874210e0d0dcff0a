"""Which images the embedded engine runs: the built-in k-NN image of the client's region.

The table of registry accounts lives in :mod:`iris_sagemaker.core.algorithm_images` (one table for the
spec builders and the engine).
"""

from __future__ import annotations

from iris_sagemaker.core.algorithm_images import KNN_REGISTRY_ACCOUNTS, knn_image_uri

__all__ = ["is_knn_image", "knn_image_uri", "unsupported_image_message"]


def is_knn_image(image: str | None, region: str) -> bool:
    """True for the region's k-NN image with tag ``1`` or ``latest`` (SageMaker pulls only in-region)."""
    if not image or region not in KNN_REGISTRY_ACCOUNTS:
        return False
    repo, _, tag = image.partition(":")
    expected_repo, _, expected_tag = knn_image_uri(region).partition(":")
    return repo == expected_repo and tag in (expected_tag, "latest")


def unsupported_image_message(image: str | None, region: str) -> str:
    try:
        expected = knn_image_uri(region)
    except ValueError as err:
        return f"The embedded SageMaker engine runs only the built-in k-NN image; {err}."
    return (
        f"The embedded SageMaker engine runs only the built-in k-NN image {expected} "
        f"(region {region}); got {image!r}."
    )
