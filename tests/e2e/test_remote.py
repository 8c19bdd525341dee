"""Remote versioning (issue 3) through the real dvc CLI: the committed local-directory remote, a team remote on a
real S3 server (SeaweedFS on loopback), partial pulls, tagged releases consumed from another repository, faults."""
from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.repo import (
    SHARD_TEMPLATE,
    Repo,
    base_environment,
    cache_objects,
    cached_outs,
    dir_listing,
    edit_params,
    lock_outs,
    make_repo,
    object_key,
    out_object_keys,
    ran_stages,
    tracked_key_material,
)
from tests.e2e.s3 import S3_BUCKET, S3Server, add_team_remote
from tests.project import readme_command, readme_python

pytestmark = pytest.mark.e2e

PREFIX = "dolly-ja"  # the team remote is s3://S3_BUCKET/PREFIX
SHARD_2 = SHARD_TEMPLATE.format("2_of_4")
SHARDS = "data/shards"
# The cached outputs: data/raw (its .dir listing and five files: two sources, their record indexes and
# sources.json), the merged file, its record index and its sources.json, data/shards (its .dir listing, four shards
# and the dataset card), the offline plots page. Metrics and plot tables are small and kept in git.
RAW_OBJECTS = 1 + 5
OBJECTS_PER_RELEASE = RAW_OBJECTS + 3 + 6 + 1
UP_TO_DATE = "Data and pipelines are up to date.\n"


@dataclass
class Published:
    """The maintainer's repository: reproduced, pushed to the team remote, committed and tagged v1."""

    repo: Repo
    first_push: subprocess.CompletedProcess
    objects_after_first_push: dict[str, int]
    origin: Path

    def shard_md5(self, name: str) -> str:
        return shard_md5s(self.repo)[name]


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server) -> Published:
    root = tmp_path_factory.mktemp("published")
    (root / "home").mkdir()
    # No AWS_* variables from the host: a dvc command gets credentials from config.local or as the test says.
    env = {key: value for key, value in base_environment(root / "home").items() if not key.startswith("AWS_")}
    repo = make_repo(root / "work" / "repo", env)
    origin = root / "work" / "origin.git"  # the project's git URL (a bare repository, as on a git server)
    repo.git("init", "-q", "--bare", "-b", "main", str(origin))
    repo.git("remote", "add", "origin", str(origin))
    add_team_remote(repo, s3_server, PREFIX)  # README "Remote storage": credentials in .dvc/config.local
    repo.sh(readme_command("dvc repro"))
    first_push = repo.sh(readme_command("dvc push"))
    objects = s3_server.objects(PREFIX)
    repo.sh(readme_command("git tag v1 && git push origin main v1"))
    return Published(repo, first_push, objects, origin)


def shard_md5s(repo: Repo) -> dict[str, str]:
    """{K_of_N: md5} of the shards in dvc.lock's data/shards listing."""
    return {Path(name).stem.rsplit("-", 1)[1]: md5 for name, md5 in dir_listing(repo, SHARDS).items()
            if name != "README.md"}


def team_clone(published: Published, server: S3Server, destination: Path) -> Repo:
    """A git clone of the release with no DVC data; its dvc commands get the credentials from the environment."""
    clone = published.repo.clone(destination)
    return Repo(clone.path, {**clone.env, **server.credentials_env})


def out_files(repo: Repo, outs) -> dict[str, bytes]:
    """The bytes of every file in the given outputs (a directory output contributes each file in it)."""
    found = {}
    for out in outs:
        path = repo.path / out
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        found.update({p.relative_to(repo.path).as_posix(): p.read_bytes() for p in files if p.exists()})
    return found


def present_outs(repo: Repo) -> list[str]:
    """The cached outputs that are in the workspace (git-tracked metrics and tables always are)."""
    return sorted(out for out in cached_outs(repo) if (repo.path / out).exists())


def test_default_local_remote_round_trips_through_a_fresh_clone(repo: Repo, tmp_path: Path) -> None:
    """The committed default remote is a directory beside the repository: no network, no credentials."""
    # Before anyone pushed, a fresh clone's pull finds nothing, says so, and fails.
    early = repo.clone(tmp_path / "work" / "early").sh(readme_command("dvc pull"), check=False)
    assert early.returncode == 1
    assert early.stdout == "Everything is up to date.\n"
    assert "ERROR: failed to pull data from the cloud - Checkout failed for following targets:\n" in early.stderr
    pushed = repo.sh(readme_command("dvc repro && dvc push"))
    expected = out_object_keys(repo)
    assert len(expected) == OBJECTS_PER_RELEASE
    assert pushed.stdout.endswith(f"Use `dvc push` to send your updates to remote storage.\n"
                                  f"{OBJECTS_PER_RELEASE} files pushed\n")
    remote = tmp_path / "work" / "dolly-ja-dvc-remote"
    assert {p.relative_to(remote).as_posix() for p in remote.rglob("*") if p.is_file()} == expected
    repo.git("diff", "--exit-code", "dvc.lock")  # the committed dvc.lock already names what the clone pulls

    clone = repo.clone(tmp_path / "work" / "clone")
    pulled = clone.sh(readme_command("dvc pull"))
    assert f"{OBJECTS_PER_RELEASE} files fetched and " in pulled.stdout
    outs = cached_outs(repo)
    original = out_files(repo, outs)
    assert len(original) == 14  # data/raw's five, the merged three, four shards and the card, the plots page
    assert out_files(clone, outs) == original
    assert clone.sh(readme_command("dvc status")).stdout == UP_TO_DATE


def test_push_sends_every_output_once_and_a_second_push_sends_nothing(published: Published,
                                                                     s3_server: S3Server) -> None:
    repo = published.repo
    expected = out_object_keys(repo)
    assert len(expected) == OBJECTS_PER_RELEASE
    assert published.first_push.stdout == f"{OBJECTS_PER_RELEASE} files pushed\n"
    # The remote holds exactly the cached outputs' objects, byte counts included (the cache also keeps copies of
    # the git-tracked metrics and tables for DVC's run cache; those are never pushed).
    assert set(published.objects_after_first_push) == expected
    assert published.objects_after_first_push == {key: size for key, size in cache_objects(repo).items()
                                                  if key in expected}

    before = s3_server.objects(PREFIX)
    second = repo.dvc("push")
    assert second.stdout == "Everything is up to date.\n"
    assert s3_server.objects(PREFIX) == before


def test_pulling_one_shard_fetches_that_shard_and_the_small_listing_only(published: Published, s3_server: S3Server,
                                                                         tmp_path: Path) -> None:
    clone = team_clone(published, s3_server, tmp_path / "work" / "clone")
    assert cache_objects(clone) == {}

    pulled = clone.sh(readme_command("dvc pull data/shards/databricks-dolly-16k-line_ja-2_of_4.jsonl"))
    assert pulled.stdout == f"A       {SHARDS}/\n2 files fetched and 1 file added\n"
    shards_listing = object_key(lock_outs(published.repo)[SHARDS])
    shard_key = object_key(published.shard_md5("2_of_4"))
    cached = cache_objects(clone)
    assert cached == {shards_listing: cached[shards_listing], shard_key: len(published.repo.read_bytes(SHARD_2))}
    assert cached[shards_listing] < 1000  # the listing of four names and hashes
    assert sorted(p.name for p in (clone.path / SHARDS).iterdir()) == [Path(SHARD_2).name]
    assert clone.read_bytes(SHARD_2) == published.repo.read_bytes(SHARD_2)


def test_pulling_the_shard_directory_fetches_every_shard(published: Published, s3_server: S3Server,
                                                         tmp_path: Path) -> None:
    clone = team_clone(published, s3_server, tmp_path / "work" / "clone")
    pulled = clone.sh(readme_command("dvc pull data/shards"))
    assert pulled.stdout == f"A       {SHARDS}/\n6 files fetched and 5 files added\n"
    assert set(cache_objects(clone)) == out_object_keys(published.repo, [SHARDS])
    assert present_outs(clone) == [SHARDS]
    assert out_files(clone, [SHARDS]) == out_files(published.repo, [SHARDS])


# What `dvc status` prints in a clone after pulling one shard: outputs that were never pulled are "not in cache"
# and their consumers' inputs "deleted"; nothing is reported as modified.
STATUS_AFTER_SHARD_PULL = """\
raw:
\tchanged outs:
\t\tnot in cache:       data/raw
merge:
\tchanged deps:
\t\tdeleted:            data/raw
\tchanged outs:
\t\tnot in cache:       data/merged/databricks-dolly-16k-ja.jsonl
\t\tnot in cache:       data/merged/records.npy
\t\tnot in cache:       data/merged/sources.json
split:
\tchanged deps:
\t\tdeleted:            data/merged/databricks-dolly-16k-ja.jsonl
\t\tdeleted:            data/merged/records.npy
\t\tdeleted:            data/merged/sources.json
\tchanged outs:
\t\tnot in cache:       data/shards
plots_page:
\tchanged outs:
\t\tnot in cache:       plots/page.html
"""


def test_after_a_partial_pull_repro_allow_missing_runs_nothing(published: Published, s3_server: S3Server,
                                                              tmp_path: Path) -> None:
    clone = team_clone(published, s3_server, tmp_path / "work" / "clone")
    clone.dvc("pull", SHARD_2)

    status = clone.dvc("status")
    assert status.stdout == STATUS_AFTER_SHARD_PULL
    assert status.returncode == 0

    # Without --allow-missing, DVC would rebuild the pipeline from the first stage (a dry run even fails, since
    # it cannot find the merge stage's input it did not build).
    dry = clone.dvc("repro", "--dry", check=False)
    assert ran_stages(dry.stdout) == ["raw"]
    assert dry.returncode == 255
    assert "ERROR: failed to reproduce 'merge'" in dry.stderr

    for command in (readme_command("dvc repro --allow-missing --dry"), readme_command("dvc repro --allow-missing")):
        result = clone.sh(command)
        assert ran_stages(result.stdout) == [], command
        assert result.stdout.endswith(UP_TO_DATE), command
        for stage in ("params", "raw", "merge", "split"):
            assert f"Stage '{stage}' didn't change, skipping\n" in result.stdout, command
    assert present_outs(clone) == [SHARDS]
    assert sorted(p.name for p in (clone.path / SHARDS).iterdir()) == [Path(SHARD_2).name]
    clone.git("diff", "--exit-code")  # dvc.lock untouched


def test_a_tagged_release_serves_one_shard_to_another_repository(published: Published, s3_server: S3Server,
                                                                tmp_path: Path) -> None:
    work = tmp_path / "work"
    origin = work / "origin.git"  # the release's git URL: a copy of the maintainer's, so this test's v2 stays here
    published.repo.git("clone", "-q", "--mirror", str(published.origin), str(origin))
    v1 = published.repo.read_bytes(SHARD_2)
    env = {**published.repo.env, **s3_server.credentials_env}  # the consumer's credentials: in the environment

    consumer = Repo(work / "consumer", env)
    consumer.path.mkdir()
    consumer.sh("git init -q -b main && dvc init -q && git commit -q -m 'consumer'")

    get = readme_command("dvc get URL data/shards/databricks-dolly-16k-line_ja-2_of_4.jsonl --rev v1 -o shard-v1.jsonl")
    consumer.sh(get.replace("URL", str(origin)))
    assert (consumer.path / "shard-v1.jsonl").read_bytes() == v1

    consumer.sh(readme_command("dvc import URL data/shards/databricks-dolly-16k-line_ja-2_of_4.jsonl --rev v1")
                .replace("URL", str(origin)))
    imported = consumer.path / Path(SHARD_2).name
    assert imported.read_bytes() == v1

    # The README's Python example, run as written with the URL filled in.
    example = readme_python("dvc.api.read").replace('"URL"', repr(str(origin)))
    saved = consumer.python("-c", example + "\nimport sys\nsys.stdout.write(json.dumps([data.decode(), records]))\n")
    data, records = json.loads(saved.stdout)
    assert data.encode("utf-8") == v1
    assert records == [json.loads(line) for line in v1.splitlines()]

    # The maintainer, on another machine (a clone with no data), moves a boundary and releases v2.
    # (no credentials in the environment: the README's --local step gives them)
    Repo(work, published.repo.env).sh(readme_command("git clone URL dolly-ja && cd dolly-ja")
                                      .replace("URL", str(origin)))
    maintainer = Repo(work / "dolly-ja", published.repo.env)
    assert "AWS_ACCESS_KEY_ID" not in maintainer.env
    maintainer.sh(readme_command("dvc remote modify --local team access_key_id KEY_ID")
                  .replace("KEY_ID", s3_server.access_key_id))
    maintainer.sh(readme_command("dvc remote modify --local team secret_access_key SECRET")
                  .replace("SECRET", s3_server.secret_access_key))

    edit_params(maintainer, lambda document: document["split"]["shards"].update(shard2=7000))
    rebuilt = maintainer.sh(readme_command("dvc repro --pull --allow-missing"))
    assert ran_stages(rebuilt.stdout) == ["params", "split"]
    lock = lock_outs(maintainer)
    shards_v2 = shard_md5s(maintainer)
    # --pull fetched only the merged files the split reads; the split wrote the shards, the card and their listing.
    card = object_key(dir_listing(maintainer, SHARDS)["README.md"])
    # (DVC also keeps copies of the split's git-tracked metrics and tables, for its run cache; never pushed.)
    tracked = {object_key(hashlib.md5(maintainer.read_bytes(path)).hexdigest())
               for path in ("metrics/split.json", "plots/shards.json", "plots/categories.json", "plots/lengths.json",
                            "plots/leakage.json", "plots/contamination.json")}
    assert set(cache_objects(maintainer)) == {object_key(lock["data/merged/databricks-dolly-16k-ja.jsonl"]),
                                              object_key(lock["data/merged/records.npy"]),
                                              object_key(lock["data/merged/sources.json"]), object_key(lock[SHARDS]),
                                              card, *map(object_key, shards_v2.values()), *tracked}
    # Shards 1 and 4 keep their bytes: the push sends the two rewritten shards, the card and the new listing.
    shards_v1 = shard_md5s(published.repo)
    assert [name for name in shards_v1 if shards_v1[name] != shards_v2[name]] == ["2_of_4", "3_of_4"]
    before = s3_server.objects(PREFIX)
    assert maintainer.sh(readme_command("dvc push")).stdout == "4 files pushed\n"
    assert set(s3_server.objects(PREFIX)) - set(before) == {
        object_key(lock[SHARDS]), card, object_key(shards_v2["2_of_4"]), object_key(shards_v2["3_of_4"])}
    maintainer.sh(readme_command('git add -A && git commit -m "dataset v2" && git tag v2 && git push origin main v2'))

    updated = consumer.sh(readme_command("dvc update --rev v2 databricks-dolly-16k-line_ja-2_of_4.jsonl.dvc"))
    assert "Importing" in updated.stdout
    v2 = imported.read_bytes()
    assert v2 == maintainer.read_bytes(SHARD_2)
    assert v2 == b"".join(v1.splitlines(keepends=True)[:3000])  # records [4000, 7000) of the same merge
    assert v2 != v1
    assert "rev: v2\n" in (consumer.path / f"{imported.name}.dvc").read_text()


def test_a_push_to_a_bucket_that_does_not_exist_says_so(s3_server: S3Server, tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    repo = make_repo(tmp_path / "work" / "repo", {**base_environment(tmp_path / "home"), **s3_server.credentials_env})
    repo.dvc("remote", "add", "-d", "team", "s3://no-such-bucket/dolly-ja")
    repo.dvc("remote", "modify", "team", "endpointurl", s3_server.endpoint)
    repo.dvc("repro")
    failed = repo.dvc("push", check=False)
    assert failed.returncode == 255
    assert failed.stderr.startswith("ERROR: unexpected error - The specified bucket does not exist: An error occurred "
                                    "(NoSuchBucket)"), failed.stderr


def test_push_to_a_stopped_server_fails_clearly_and_a_later_push_completes(
        published: Published, s3_server: S3Server, own_s3_server: S3Server, tmp_path: Path) -> None:
    server = own_s3_server
    # A maintainer clone holding all the data, its team remote pointed at this test's own server.
    clone = team_clone(published, s3_server, tmp_path / "work" / "clone")
    clone.dvc("pull")
    clone = Repo(clone.path, {**clone.env, **server.credentials_env})
    clone.dvc("remote", "modify", "--local", "team", "endpointurl", server.endpoint)
    expected = cache_objects(clone)
    assert len(expected) == OBJECTS_PER_RELEASE

    assert clone.dvc("push", "data/raw").stdout == f"{RAW_OBJECTS} files pushed\n"
    partial = server.objects(PREFIX)
    assert set(partial) == out_object_keys(clone, ["data/raw"])

    server.kill()
    failed = clone.dvc("push", check=False)
    assert failed.returncode == 255
    assert f'ERROR: unexpected error - Could not connect to the endpoint URL: "{server.endpoint}/{S3_BUCKET}/' \
           f'{PREFIX}/files/md5/' in failed.stderr

    server.start()  # same directory, ports and credentials
    assert server.objects(PREFIX) == partial
    resumed = clone.dvc("push")
    assert resumed.stdout == f"{OBJECTS_PER_RELEASE - RAW_OBJECTS} files pushed\n"
    assert server.objects(PREFIX) == expected


def test_verify_refuses_a_corrupted_object_from_an_untrusted_remote(published: Published, s3_server: S3Server,
                                                                   tmp_path: Path) -> None:
    # An untrusted copy of the release's remote in which shard 2's object was altered: two records swapped,
    # so size and line count still match.
    client, untrusted = s3_server.client(), "untrusted"
    for key in published.objects_after_first_push:
        client.copy_object(Bucket=S3_BUCKET, Key=f"{untrusted}/{key}",
                           CopySource={"Bucket": S3_BUCKET, "Key": f"{PREFIX}/{key}"})
    original = published.repo.read_bytes(SHARD_2)
    lines = original.splitlines(keepends=True)
    corrupted = b"".join([lines[1], lines[0], *lines[2:]])
    assert corrupted != original and len(corrupted) == len(original)
    shard_key = object_key(published.shard_md5("2_of_4"))
    client.put_object(Bucket=S3_BUCKET, Key=f"{untrusted}/{shard_key}", Body=corrupted)

    def consumer(name: str) -> Repo:
        clone = team_clone(published, s3_server, tmp_path / "work" / name)
        clone.dvc("remote", "modify", "--local", "team", "url", s3_server.url(untrusted))
        return clone

    # Without verify, DVC trusts the object's name: the corrupted bytes land in the cache and the workspace,
    # the pull succeeds and `dvc status` sees nothing wrong.
    trusting = consumer("trusting")
    assert trusting.dvc("pull", SHARD_2).returncode == 0
    assert trusting.read_bytes(SHARD_2) == corrupted
    assert set(cache_objects(trusting)) == {shard_key, object_key(lock_outs(published.repo)[SHARDS])}
    assert trusting.dvc("status").stdout == STATUS_AFTER_SHARD_PULL

    # With verify, every downloaded object is hashed: the corrupted one is dropped, everything else is checked out.
    verifying = consumer("verifying")
    verifying.sh(readme_command("dvc remote modify --local team verify true"))
    pulled = verifying.sh("dvc pull", check=False)
    assert pulled.returncode == 1
    assert pulled.stderr.startswith("ERROR: failed to pull data from the cloud - Checkout failed for following "
                                    f"targets:\n{SHARDS}\nIs your cache up to date?\n")
    assert f"{OBJECTS_PER_RELEASE} files fetched" in pulled.stdout  # DVC counts the refused object as fetched
    # The directory holding the corrupted shard is not checked out at all; every other output is, intact.
    assert not (verifying.path / SHARDS).exists()
    assert shard_key not in cache_objects(verifying)
    others = [out for out in cached_outs(published.repo) if out != SHARDS]
    assert present_outs(verifying) == sorted(others)
    assert out_files(verifying, others) == out_files(published.repo, others)
    # The verbose log names the cause.
    again = verifying.dvc("pull", "-v", SHARD_2, check=False)
    assert again.returncode == 1
    assert f"corrupted cache file '{verifying.path / '.dvc' / 'cache' / shard_key}'" in again.stdout + again.stderr


def test_team_remote_setup_keeps_key_material_out_of_git(published: Published, s3_server: S3Server,
                                                          tmp_path: Path) -> None:
    repo, secrets = published.repo, [s3_server.access_key_id, s3_server.secret_access_key]
    # The README commands put the credentials on disk, in .dvc/config.local only ...
    local_config = (repo.path / ".dvc" / "config.local").read_text()
    assert all(secret in local_config for secret in secrets)
    assert not any(secret in (repo.path / ".dvc" / "config").read_text() for secret in secrets)
    # ... which git ignores, so neither the index nor any commit or tag (v1 included) holds key material.
    assert ".dvc/config.local" not in repo.git("ls-files").stdout.splitlines()
    repo.git("check-ignore", "-q", ".dvc/config.local")
    assert repo.git("status", "--porcelain", "--ignored", ".dvc/config.local").stdout == "!! .dvc/config.local\n"
    assert tracked_key_material(repo, secrets) == []
    # And they work: the maintainer's repository reaches the remote with no credentials in its environment.
    assert repo.dvc("status", "--cloud").stdout == "Cache and remote 'team' are in sync.\n"

    # The check catches a leak: the same setup with `--local` forgotten, committed.
    (tmp_path / "home").mkdir()
    leaky = make_repo(tmp_path / "work" / "leaky", base_environment(tmp_path / "home"))
    leaky.dvc("remote", "add", "-d", "team", s3_server.url(PREFIX))
    leaky.dvc("remote", "modify", "team", "access_key_id", s3_server.access_key_id)
    leaky.dvc("remote", "modify", "team", "secret_access_key", s3_server.secret_access_key)
    leaky.commit("credentials committed by mistake")
    assert tracked_key_material(leaky, secrets) == [".dvc/config"]
    # Even for a secret it was not told about, by the access key id's shape.
    assert tracked_key_material(leaky, [f"unused-{uuid.uuid4()}"]) == [".dvc/config"]
