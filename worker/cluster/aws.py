"""Sign requests with AWS SigV4 for Amazon OpenSearch Service."""

from __future__ import annotations

from typing import Any

from worker.errors import ClusterError


def aws_signing_options(region: str, service: str) -> dict[str, Any]:
    """Return opensearch-py options that sign every request with AWS SigV4.

    ``service`` is ``es`` for a managed domain and ``aoss`` for OpenSearch
    Serverless. Credentials come from boto3's usual chain: environment
    variables, the shared credentials file, an instance or task role.

    Raises:
        ClusterError: boto3 is not installed or finds no credentials.
    """
    try:
        import boto3
    except ImportError as error:
        raise ClusterError(
            "AWS request signing needs boto3; install it with pip install 'd2q[aws]'"
        ) from error
    from opensearchpy import Urllib3AWSV4SignerAuth, Urllib3HttpConnection

    credentials = boto3.Session().get_credentials()
    if credentials is None:
        raise ClusterError(
            f"no AWS credentials found for signing requests to region {region!r}; "
            f"set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or "
            f"run with an instance role"
        )
    return {
        "http_auth": Urllib3AWSV4SignerAuth(credentials, region, service),
        "connection_class": Urllib3HttpConnection,
    }
