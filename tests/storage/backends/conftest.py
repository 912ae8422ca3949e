"""Session-scoped real services for the backend tests (see backend_services.py).

Every service listens on 127.0.0.1 on a free port, is started once per test session
when a test first needs it, and is stopped by PID at the end. Tests isolate
themselves with a unique key prefix (or container / directory) instead of resetting
the service.
"""

from __future__ import annotations

import os

import backend_services as svc
import pytest
from backend_services import S3_KEYS, SFTPEnv, azure_connection_string, s3_client  # noqa: F401


@pytest.fixture(scope="session")
def service_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session", autouse=True)
def _quiet_sdk_environment():
    """Keep the developer's cloud settings out of the tests (emulator credentials only)."""
    saved = {k: os.environ.pop(k) for k in list(os.environ)
             if k.startswith(("AWS_", "AZURE_STORAGE_", "STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_"))}
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    yield
    os.environ.pop("AWS_EC2_METADATA_DISABLED", None)
    os.environ.update(saved)


# ---------------------------------------------------------------------------- S3 (moto)
@pytest.fixture(scope="session")
def moto(service_dir):
    service = svc.start_moto(service_dir)
    yield service
    service.stop()


@pytest.fixture(scope="session")
def s3_bucket(moto):
    name = "ebas-tests"
    s3_client(moto.port).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def s3_lock_bucket(moto):
    name = "ebas-locked"
    s3_client(moto.port).create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


# ---------------------------------------------------------------------------- Azure (azurite)
@pytest.fixture(scope="session")
def azurite(service_dir):
    service = svc.start_azurite(service_dir)
    yield service
    service.stop()


@pytest.fixture(scope="session")
def azure_container(azurite):
    from azure.storage.blob import BlobServiceClient

    name = "ebas-tests"
    BlobServiceClient.from_connection_string(azure_connection_string(azurite.port)).create_container(name)
    return name


# ---------------------------------------------------------------------------- GCS emulator
@pytest.fixture(scope="session")
def gcs(service_dir):
    service = svc.start_gcs(service_dir)
    yield service
    service.stop()


@pytest.fixture(scope="session")
def gcs_bucket(gcs):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project="ebas-test", credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": f"http://127.0.0.1:{gcs.port}"})
    name = "ebas-tests"
    client.create_bucket(name)
    return name


# ---------------------------------------------------------------------------- relay
@pytest.fixture
def relay_to():
    """``relay_to(port)`` starts a misbehaving TCP relay in front of a service port."""
    relays = []

    def make(port: int) -> svc.Relay:
        relay = svc.Relay(port)
        relays.append(relay)
        return relay

    yield make
    for relay in relays:
        relay.close()


# ---------------------------------------------------------------------------- SFTP (asyncssh)
@pytest.fixture(scope="session")
def sftp(service_dir):
    svc.require_module("asyncssh")
    svc.require_module("paramiko")
    from sftp_server import SFTPTestServer

    server = SFTPTestServer(service_dir / "sftp-root", service_dir / "sftp-keys").start()
    known_hosts = service_dir / "sftp-known_hosts"
    known_hosts.write_text(server.known_hosts_line())
    yield SFTPEnv(server, str(known_hosts))
    server.stop()
