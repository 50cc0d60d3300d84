"""Shared fixtures for the fake-provider tests: a throwaway CA (trustme) and a server certificate for
127.0.0.1, so fakes can serve `wss://` (google-genai only speaks TLS with an API key)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_server_cert(tls_ca: trustme.CA) -> trustme.LeafCert:
    return tls_ca.issue_cert("127.0.0.1", "localhost")


@pytest.fixture(scope="session")
def tls_server_context(tls_server_cert: trustme.LeafCert) -> ssl.SSLContext:
    """Pass as `ssl_context=` to a fake server."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_server_cert.configure_cert(ctx)
    return ctx


@pytest.fixture(scope="session")
def tls_client_context(tls_ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts only the test CA (for websockets' `connect(ssl=...)`)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    tls_ca.configure_trust(ctx)
    return ctx


@pytest.fixture(scope="session")
def tls_ca_file(tls_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CA as a PEM file (e.g. for SSL_CERT_FILE)."""
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="session")
def tls_cert_files(tls_server_cert: trustme.LeafCert, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(certificate chain PEM, private key PEM) for `--tls-cert` / `--tls-key`."""
    directory = tmp_path_factory.mktemp("tls-server")
    cert, key = directory / "cert.pem", directory / "key.pem"
    tls_server_cert.cert_chain_pems[0].write_to_path(str(cert))
    for pem in tls_server_cert.cert_chain_pems[1:]:
        pem.write_to_path(str(cert), append=True)
    tls_server_cert.private_key_pem.write_to_path(str(key))
    return cert, key
