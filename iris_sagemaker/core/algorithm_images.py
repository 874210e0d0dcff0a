"""Where SageMaker's built-in k-NN image lives in each region (ECR registry accounts, image ``knn:1``)."""

from __future__ import annotations

KNN_REPOSITORY = "knn:1"
# Registry account of SageMaker's built-in k-NN algorithm, by region (AWS' published registry paths; a
# test checks them against the SageMaker Python SDK's image_uris table). The ISO partitions are left out.
KNN_REGISTRY_ACCOUNTS = {
    "af-south-1": "455444449433",
    "ap-east-1": "286214385809",
    "ap-northeast-1": "351501993468",
    "ap-northeast-2": "835164637446",
    "ap-northeast-3": "867004704886",
    "ap-south-1": "991648021394",
    "ap-south-2": "628508329040",
    "ap-southeast-1": "475088953585",
    "ap-southeast-2": "712309505854",
    "ap-southeast-3": "951798379941",
    "ap-southeast-4": "106583098589",
    "ca-central-1": "469771592824",
    "ca-west-1": "190319476487",
    "cn-north-1": "390948362332",
    "cn-northwest-1": "387376663083",
    "eu-central-1": "664544806723",
    "eu-central-2": "680994064768",
    "eu-north-1": "669576153137",
    "eu-south-1": "257386234256",
    "eu-south-2": "104374241257",
    "eu-west-1": "438346466558",
    "eu-west-2": "644912444149",
    "eu-west-3": "749696950732",
    "il-central-1": "898809789911",
    "me-central-1": "272398656194",
    "me-south-1": "249704162688",
    "sa-east-1": "855470959533",
    "us-east-1": "382416733822",
    "us-east-2": "404615174143",
    "us-gov-east-1": "237065988967",
    "us-gov-west-1": "226302683700",
    "us-west-1": "632365934929",
    "us-west-2": "174872318107",
}


class UnknownRegionError(ValueError):
    pass


def knn_image_uri(region: str) -> str:
    """``{account}.dkr.ecr.{region}.amazonaws.com/knn:1`` for ``region``."""
    try:
        account = KNN_REGISTRY_ACCOUNTS[region]
    except KeyError:
        raise UnknownRegionError(
            f"no SageMaker k-NN image is known for region {region!r}; known regions: "
            f"{', '.join(sorted(KNN_REGISTRY_ACCOUNTS))}. Set IRIS_SAGEMAKER_KNN_IMAGE to the image URI "
            "to use another region"
        ) from None
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{domain}/{KNN_REPOSITORY}"
