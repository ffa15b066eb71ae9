"""TLS verification, credentials kept out of logs, AWS SigV4: through a loopback proxy."""

from __future__ import annotations

import base64
import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import read_sample
from tests.faultproxy import FaultProxy
from tests.reliability import PROXY_PORT, TLS_PROXY_PORT, run_d2q_with
from tests.support import cli_arguments, create_index

PASSWORD = "pa55-word-never-logged"
API_KEY = "api-key-never-logged"
AWS_SECRET = "aws-secret-never-logged"


def _self_signed_certificate(folder: Path) -> tuple[str, str]:
    """Write a certificate for 127.0.0.1 and its key; return both paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "d2q test proxy")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_path = folder / "proxy-cert.pem"
    key_path = folder / "proxy-key.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(certificate_path), str(key_path)


@pytest.fixture()
def tls_proxy(opensearch_url, tmp_path):
    certificate = _self_signed_certificate(tmp_path)
    with FaultProxy(opensearch_url, TLS_PROXY_PORT, certificate=certificate) as proxy:
        proxy.certificate_path = certificate[0]
        yield proxy


@pytest.fixture()
def small_index(engine, index_name):
    create_index(engine, index_name, read_sample(3))
    return index_name


def test_tls_verified_by_default(tls_proxy, small_index):
    result = run_d2q_with(["status", "--url", tls_proxy.url, "--index", small_index])

    assert result.returncode == 2
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr
    assert tls_proxy.seen() == []


def test_ca_certs_trusts_certificate(tls_proxy, small_index):
    result = run_d2q_with(
        [
            "status",
            "--url",
            tls_proxy.url,
            "--index",
            small_index,
            "--ca-certs",
            tls_proxy.certificate_path,
        ]
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert '"total": 3' in result.stdout


def test_insecure_flag_warns(tls_proxy, small_index):
    result = run_d2q_with(
        ["status", "--url", tls_proxy.url, "--index", small_index, "--insecure"]
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert "TLS certificate verification is off" in result.stderr


def test_basic_auth_never_logged(tls_proxy, small_index, tiny_model):
    pair = base64.b64encode(f"d2q:{PASSWORD}".encode()).decode()
    tls_proxy.state.required_authorization = f"Basic {pair}"
    arguments = cli_arguments(tls_proxy.url, small_index, tiny_model, "--no-progress")
    debug = ["--log-level", "DEBUG", "--ca-certs", tls_proxy.certificate_path]

    accepted = run_d2q_with(
        ["backfill", *arguments, *debug], D2Q_USERNAME="d2q", D2Q_PASSWORD=PASSWORD
    )
    rejected = run_d2q_with(
        ["backfill", *arguments, *debug],
        D2Q_USERNAME="d2q",
        D2Q_PASSWORD=PASSWORD + "x",
    )

    assert accepted.returncode == 0, accepted.stderr[-2000:]
    assert "DEBUG" in accepted.stderr
    assert PASSWORD not in accepted.stdout + accepted.stderr
    assert pair not in accepted.stdout + accepted.stderr
    assert rejected.returncode == 2
    assert PASSWORD not in rejected.stdout + rejected.stderr


def test_api_key_from_config_never_logged(tls_proxy, small_index, tmp_path):
    tls_proxy.state.required_authorization = f"ApiKey {API_KEY}"
    config = tmp_path / "d2q.toml"
    config.write_text(
        f'[d2q]\napi_key = "{API_KEY}"\nca_certs = "{tls_proxy.certificate_path}"\n'
    )

    result = run_d2q_with(
        [
            "status",
            "--url",
            tls_proxy.url,
            "--index",
            small_index,
            "--config",
            str(config),
            "--log-level",
            "DEBUG",
        ]
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert API_KEY not in result.stdout + result.stderr
    assert tls_proxy.seen()[-1].headers["authorization"] == f"ApiKey {API_KEY}"


def test_credentials_in_url_rejected(small_index):
    url = f"https://d2q:{PASSWORD}@127.0.0.1:{TLS_PROXY_PORT}"

    result = run_d2q_with(["status", "--url", url, "--index", small_index])

    assert result.returncode == 2
    assert "url: must not contain credentials" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


def test_aws_sigv4_signs_requests(opensearch_url, engine_name, small_index):
    if engine_name != "opensearch":
        pytest.skip("AWS SigV4 signing is for Amazon OpenSearch Service")
    credentials = {
        "AWS_ACCESS_KEY_ID": "AKIDD2QTEST",
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
    }
    with FaultProxy(opensearch_url, PROXY_PORT) as proxy:
        result = run_d2q_with(
            [
                "status",
                "--url",
                proxy.url,
                "--index",
                small_index,
                "--log-level",
                "DEBUG",
            ],
            D2Q_AWS_REGION="eu-west-1",
            AWS_CONFIG_FILE="/nonexistent",
            AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
            **credentials,
        )
        signed = [
            request for request in proxy.seen() if "authorization" in request.headers
        ]

    assert result.returncode == 0, result.stderr[-2000:]
    assert AWS_SECRET not in result.stdout + result.stderr
    assert signed
    for request in signed:
        authorization = request.headers["authorization"]
        assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDD2QTEST/")
        assert "/eu-west-1/es/aws4_request" in authorization
        assert "x-amz-date" in request.headers
        assert AWS_SECRET not in authorization
