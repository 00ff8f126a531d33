"""Per-document `--timeout` on every batch backend (issue 18): a document past the timeout is recorded as failed
("timed out"), its worker is stopped and replaced, and the batch goes on.

The Ray backend is driven here through a stand-in for the `ray` module (actors run in this process; a document
named `hang*` never finishes), so the test needs no Ray and runs in seconds; with Ray installed the same batch
also runs on real local actors (marked slow: Ray's start-up takes seconds to tens of seconds on a busy box).
"""

from __future__ import annotations

import itertools
import time
import types
from pathlib import Path

import pytest

from m3analyst.batch import BatchOptions, run_batch
from m3analyst.batch import ray_backend
from m3analyst.settings import Settings

CONTRACT = ("This Agreement is entered into by Acme Corp. and Beta LLC on January 5, 2020. This Agreement shall be "
            "governed by the laws of the State of Delaware. Either party may terminate on thirty days notice.\n")


class _Ref:
    _ids = itertools.count()

    def __init__(self, fn=None, hang: bool = False):
        self.id, self.fn, self.hang = next(self._ids), fn, hang


class _Method:
    def __init__(self, actor, name):
        self.actor, self.name = actor, name

    def remote(self, *args):
        task = args[0] if args else None
        hang = task is not None and Path(task.path).name.startswith("hang")
        return _Ref(lambda: getattr(self.actor.body, self.name)(*args), hang=hang)


class _Actor:
    def __init__(self, cls, args):
        self.body, self.alive = cls(*args), True
        self.ready, self.process = _Method(self, "ready"), _Method(self, "process")


class FakeRay(types.SimpleNamespace):
    """The part of the `ray` API the backend uses; `killed` counts ray.kill calls on live actors."""

    class exceptions:
        class RayError(Exception):
            pass

        class RayActorError(RayError):
            pass

    def __init__(self):
        super().__init__(killed=0, actors=[])

    def is_initialized(self):
        return True

    def cluster_resources(self):
        return {"CPU": 2}

    def remote(self, **_kw):
        def wrap(cls):
            def make(*args):
                self.actors.append(actor := _Actor(cls, args))
                return actor
            return types.SimpleNamespace(remote=make)
        return wrap

    def get(self, ref):
        return [r.fn() for r in ref] if isinstance(ref, list) else ref.fn()

    def wait(self, refs, num_returns=1, timeout=None):
        done = [r for r in refs if not r.hang][:num_returns]
        if not done:
            time.sleep(timeout or 0)
        return done, [r for r in refs if r not in done]

    def kill(self, actor):
        self.killed += actor.alive
        actor.alive = False

    def shutdown(self):
        pass


def _settings(timeout: float) -> Settings:
    s = Settings()
    s.engine.model = "none"
    s.limits.document_timeout_s = timeout
    return s


def test_ray_backend_times_out_a_document_and_goes_on(tmp_path, monkeypatch):
    fake = FakeRay()
    monkeypatch.setattr(ray_backend, "import_ray", lambda: fake)
    docs = tmp_path / "in"
    docs.mkdir()
    for name in ("a.txt", "hang.txt", "x.txt", "y.txt"):
        (docs / name).write_text(CONTRACT.replace("Delaware", name[0].upper() + "-land"))
    t0 = time.perf_counter()
    report = run_batch(BatchOptions(str(docs), tmp_path / "out", _settings(1.0), workers=1, ray="local"))
    took = time.perf_counter() - t0
    status = {r["id"]: (r["status"], r.get("error") or "") for r in report.rows}
    assert report.backend == "ray"
    assert status["hang"][0] == "failed" and "timed out after 1 s" in status["hang"][1]
    assert all(status[k][0] == "ok" for k in ("a", "x", "y"))  # the batch went on after the timeout
    assert fake.killed >= 2  # the hung document's actor was killed (and the rest at the end)
    assert len(fake.actors) == 2  # one fresh actor replaced the killed one: documents were still pending
    assert took < 30


def test_ray_backend_without_timeout_waits(tmp_path, monkeypatch):
    """A slow document within the timeout is not cut short: with a 60 s limit all finish normally."""
    fake = FakeRay()
    monkeypatch.setattr(ray_backend, "import_ray", lambda: fake)
    docs = tmp_path / "in"
    docs.mkdir()
    for name in ("a.txt", "b.txt"):
        (docs / name).write_text(CONTRACT.replace("Delaware", name[0].upper() + "-land"))
    report = run_batch(BatchOptions(str(docs), tmp_path / "out", _settings(60.0), workers=2, ray="local"))
    assert [r["status"] for r in report.rows] == ["ok", "ok"] and fake.killed == 2  # only the final clean-up


@pytest.mark.slow
def test_real_ray_actor_past_the_timeout_is_killed(tmp_path):
    pytest.importorskip("ray", reason="Ray is an optional extra (pip install -e '.[ray]')")
    docs = tmp_path / "in"
    docs.mkdir()
    (docs / "slow.txt").write_text("The Supplier shall deliver the goods within thirty days.\n" * 200_000)
    (docs / "fast.txt").write_text(CONTRACT)  # well inside the limit even on a busy box (a fresh actor's first task)
    report = run_batch(BatchOptions(str(docs), tmp_path / "out", _settings(20.0), workers=1, ray="local", domain="legal"))
    status = {r["id"]: (r["status"], r.get("error") or "") for r in report.rows}
    assert status["slow"][0] == "failed" and "timed out" in status["slow"][1]
    assert status["fast"][0] == "ok", status
