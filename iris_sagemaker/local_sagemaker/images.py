"""Where SageMaker's built-in k-NN image lives, per region (public: the spec builders import it).

The embedded engine only runs this image; the registry accounts are SageMaker's own (see the
"Docker Registry Paths and Example Code" page of the SageMaker documentation).
"""

from __future__ import annotations

KNN_IMAGE_NAME = "knn"
KNN_IMAGE_TAG = "1"
KNN_IMAGE_ACCOUNTS: dict[str, str] = {
    "us-east-1": "382416733822",
    "us-east-2": "404615174143",
    "us-west-2": "174872318107",
}


def knn_image_uri(region: str) -> str:
    """``{account}.dkr.ecr.{region}.amazonaws.com/knn:1`` for a region the table knows."""
    try:
        account = KNN_IMAGE_ACCOUNTS[region]
    except KeyError:
        known = ", ".join(sorted(KNN_IMAGE_ACCOUNTS))
        raise ValueError(
            f"no k-NN image account known for region {region!r}; known regions: {known}"
        ) from None
    return f"{account}.dkr.ecr.{region}.amazonaws.com/{KNN_IMAGE_NAME}:{KNN_IMAGE_TAG}"


def is_knn_image(image: str | None, region: str) -> bool:
    """True for the region's k-NN image with tag ``1`` or ``latest`` (SageMaker pulls only in-region)."""
    if not image or region not in KNN_IMAGE_ACCOUNTS:
        return False
    repo, _, tag = image.partition(":")
    return repo == knn_image_uri(region).rpartition(":")[0] and tag in (KNN_IMAGE_TAG, "latest")


def unsupported_image_message(image: str | None, region: str) -> str:
    try:
        expected = knn_image_uri(region)
    except ValueError as err:
        return f"The embedded SageMaker engine runs only the built-in k-NN image; {err}."
    return (
        f"The embedded SageMaker engine runs only the built-in k-NN image {expected} "
        f"(region {region}); got {image!r}."
    )
