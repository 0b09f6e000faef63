"""An S3 DVC remote (dvc-s3) against moto's S3-compatible server on 127.0.0.1: push, clone, pull."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from pipeline.testing.workspace import files, make_workspace, run

pytestmark = pytest.mark.e2e
BUCKET = "colorize-artifacts"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    """moto in server mode on loopback, with an empty bucket."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                 aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"]).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def test_the_raw_images_go_to_s3_and_comes_back_byte_identical_in_a_clone(tmp_path, prefect_api_url, s3_endpoint):
    repo, env = make_workspace(tmp_path, prefect_api_url)
    env = {**env, "AWS_EC2_METADATA_DISABLED": "true", "AWS_DEFAULT_REGION": "us-east-1"}  # nothing but the endpoint is asked
    run(repo, env, "dvc", "repro", "scrape")
    run(repo, env, "dvc", "remote", "add", "-d", "s3", f"s3://{BUCKET}/dvc")
    run(repo, env, "dvc", "remote", "modify", "s3", "endpointurl", s3_endpoint)
    run(repo, env, "git", "commit", "-qam", "dataset on S3")

    pushed = run(repo, {**env, **CREDENTIALS}, "dvc", "push")  # credentials from the environment, as boto reads them
    assert "files pushed" in pushed.stdout
    stored = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                          **{key.lower(): value for key, value in CREDENTIALS.items()}).list_objects_v2(Bucket=BUCKET)
    assert stored["KeyCount"] > 10 and all(item["Key"].startswith("dvc/files/md5/") for item in stored["Contents"])

    clone = tmp_path / "clone"
    run(tmp_path, env, "git", "clone", "-q", str(repo), str(clone))
    denied = run(clone, env, "dvc", "pull", "data/raw", check=False)
    assert denied.returncode != 0 and "Unable to locate credentials" in denied.stderr
    for key, value in (("access_key_id", CREDENTIALS["AWS_ACCESS_KEY_ID"]), ("secret_access_key", CREDENTIALS["AWS_SECRET_ACCESS_KEY"])):
        run(clone, env, "dvc", "remote", "modify", "--local", "s3", key, value)  # or in .dvc/config.local, never committed
    run(clone, env, "dvc", "pull", "data/raw")
    assert files(clone / "data/raw") == files(repo / "data/raw")
    assert not run(clone, env, "git", "status", "--porcelain").stdout.strip()
