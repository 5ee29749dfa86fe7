"""The README's cluster workflow keeps everything on object storage: search, SIGINT + --resume, report and export
against a local S3-compatible endpoint (moto's server mode on 127.0.0.1), with the experiment under
``s3://bucket/runs``. pyarrow (nas_lth's store) and Ray Tune (its state) both reach it through the standard
``AWS_ENDPOINT_URL`` setting, exactly as they would reach AWS or MinIO."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from test_search import interrupt_when, run, search_cmd, tiny_space, write_space

pytestmark = pytest.mark.integration
SAMPLES = 5


@pytest.fixture
def s3(monkeypatch):
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://{host}:{port}"}.items():
        monkeypatch.setenv(k, v)  # the test process and every subprocess it starts (search_env copies it)
    import boto3

    client = boto3.client("s3")
    client.create_bucket(Bucket="bucket")
    yield client
    server.stop()


def keys(client, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket="bucket", Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_search_resume_report_and_export_on_object_storage(s3, tmp_path):
    from nas_lth.experiment import journal
    from nas_lth.store import locate, read

    space = write_space(tmp_path / "s3.yaml", tiny_space(
        "on_s3", SAMPLES, {"criterion": {"choice": ["large_final", "random", "snip", "magnitude_increase"]},
                           "rounds": {"int": [1, 3]}}, scheduler="fifo", max_concurrent=1))
    storage, uri = "s3://bucket/runs", "s3://bucket/runs/on_s3"
    # a driver-local journal left by an earlier experiment at the same URI must not leak into this one
    stale = optuna.create_study(study_name="on_s3", storage=JournalStorage(JournalFileBackend(
        journal.local_path(locate(uri)))), load_if_exists=True)
    stale.add_trial(optuna.trial.create_trial(value=0.5, user_attrs={"tune_trial_id": "stale"}))
    cmd = search_cmd(space, storage)  # type: ignore[arg-type] - a URI, not a path

    def rows():
        return [k for k in keys(s3, "runs/on_s3/trials/") if k.endswith(".parquet")
                and not k.rsplit("/", 1)[1].startswith(".")]

    interrupt_when(cmd, tmp_path, lambda: len(rows()) >= 2, signal.SIGINT, "2 rows on S3")
    before = {k: s3.get_object(Bucket="bucket", Key=k)["ETag"] for k in rows()}
    assert len(before) < SAMPLES, "every trial finished before SIGINT: make the trials slower"
    # the live study's journal was copied to the bucket by the interrupted run; the resume runs as if on
    # another machine (no driver-local copy): it must continue from the bucket's copy
    assert "runs/on_s3/optuna.journal" in keys(s3, "runs/on_s3/")
    shutil.rmtree(os.path.dirname(journal.local_path(locate(uri))))

    proc = run([*cmd, "--resume"], tmp_path, "resume")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = read(uri)
    assert len(res.trials) == SAMPLES and res.trials.trial_id.is_unique
    assert (res.trials.status == "completed").all()
    assert {k: s3.get_object(Bucket="bucket", Key=k)["ETag"] for k in before} == before  # rows kept as written
    assert any(k.startswith("runs/on_s3/tickets/") for k in keys(s3, "runs/on_s3/"))
    assert not [k for k in keys(s3, "runs/on_s3/") if k.endswith("driver.lock")]  # the lease was given back
    assert not any(tmp_path.glob("**/on_s3/trials"))  # nothing of it landed on the local disk
    copy = tmp_path / "optuna.journal"
    copy.write_bytes(s3.get_object(Bucket="bucket", Key="runs/on_s3/optuna.journal")["Body"].read())
    study = optuna.load_study(study_name="on_s3", storage=JournalStorage(JournalFileBackend(str(copy))))
    told = sorted(t.user_attrs["tune_trial_id"] for t in study.trials)
    assert told == sorted(res.trials.trial_id)  # the trials of both runs, each once

    out = tmp_path / "report"
    rep = subprocess.run([sys.executable, "-m", "nas_lth.report", uri, "-o", str(out)], capture_output=True,
                         text=True, timeout=300)
    assert rep.returncode == 0, rep.stderr[-3000:]
    assert f"{SAMPLES} trials" in (out / "summary.md").read_text()

    ticket = tmp_path / "best.ticket.pt"
    exp = subprocess.run([sys.executable, "-m", "nas_lth.export", uri, "--best", "-o", str(ticket), "--verify"],
                         capture_output=True, text=True, timeout=300)
    assert exp.returncode == 0, exp.stdout[-2000:] + exp.stderr[-2000:]
    assert ticket.stat().st_size > 0
