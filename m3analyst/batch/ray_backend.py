"""The Ray backend: the same `Worker` as a Ray actor (model loaded once per actor, one task per document).

`--ray` starts a local Ray (all cores of this machine) unless $RAY_ADDRESS names a cluster;
`--ray-address ADDRESS` joins a running cluster (`ray start --head` elsewhere; m3analyst must be
installed on its nodes). (Typer has no optional-value options, hence two flags, not `--ray [ADDRESS]`.) With an address the
document's bytes travel with the task, so nodes need not see the coordinator's files. Outcomes
stream back as each task finishes; the coordinator writes memos, records and the summary exactly
as for local workers. Ray is an optional extra: `pip install -e ".[ray]"`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterable, Iterator

from m3analyst.batch.local import Backend
from m3analyst.batch.work import Outcome, Task, Worker, failed
from m3analyst.errors import M3Error, ModelError, UsageError
from m3analyst.settings import Settings

LOCAL = "local"


def import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install -e '.[ray]' (or pip install 'ray>=2.30')") from None
    return ray


class _ActorBody:
    """Runs inside a Ray actor process: one Worker, loaded once."""

    def __init__(self, settings_json: str, threads: int, name: str):
        self.error = None
        try:
            self.worker = Worker(Settings.model_validate_json(settings_json), threads, name=name)
        except M3Error as e:
            self.error = str(e)
        except Exception as e:  # noqa: BLE001 - reported through ready()
            self.error = f"{type(e).__name__}: {e}"

    def ready(self) -> str | None:
        return self.error

    def process(self, task: Task) -> Outcome:
        return self.worker.process(task)


class RayBackend(Backend):
    name = "ray"

    def __init__(self, settings: Settings, workers: int | None, address: str | None, poll_s: float = 0.2):
        super().__init__()
        self.ray = import_ray()
        self.settings = settings
        self.timeout_s = settings.limits.document_timeout_s
        self.poll_s = poll_s
        if address in (None, "", LOCAL) and os.environ.get("RAY_ADDRESS"):
            address = os.environ["RAY_ADDRESS"]
        self.ship_bytes = address not in (None, "", LOCAL)
        self.started = False
        self._spawned = 0
        self._cls = None  # the Ray actor class, made on first use
        if not self.ray.is_initialized():
            self._init(address)
        cpus = max(1, int(self.ray.cluster_resources().get("CPU", 1)))
        self.n = max(1, min(workers or cpus, cpus))
        self.threads = settings.engine.threads or max(1, cpus // self.n)
        self.cpus_per_actor = min(self.threads, cpus)

    def _init(self, address: str | None) -> None:
        kw = dict(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        if self.ship_bytes:
            self.ray.init(address=address, **kw)
        else:
            self.ray.init(address="local", num_cpus=os.cpu_count() or 1, **kw)
        self.started = True

    def _actor(self):
        self._spawned += 1
        if self._cls is None:
            self._cls = self.ray.remote(num_cpus=self.cpus_per_actor, max_restarts=0)(_ActorBody)
        return self._cls.remote(self.settings.model_dump_json(), self.threads, f"ray{self._spawned}")

    def _start(self, n: int) -> list:
        actors = [self._actor() for _ in range(n)]
        for err in self.ray.get([a.ready.remote() for a in actors]):
            if err:
                raise ModelError(f"Ray actor could not start: {err}")
        return actors

    def _submit(self, actor, task: Task):
        if self.ship_bytes and task.data is None:
            task.data = Path(task.path).read_bytes()
        return actor.process.remote(task)

    def run(self, tasks: Iterable[Task]) -> Iterator[Outcome]:
        pending = list(tasks)[::-1]  # pop() from the end keeps input order
        actors = self._start(min(self.n, len(pending))) if pending else []
        idle, in_flight = list(actors), {}
        try:
            while not self.abandoning and (in_flight or (pending and not self.stopping)):
                while idle and pending and not self.stopping:
                    task = pending.pop()
                    try:
                        ref = self._submit(idle[-1], task)
                    except OSError as e:  # the file went away since it was hashed
                        yield failed(task, f"{task.path}: cannot read file ({e.strerror or e})", "InputError", True)
                        continue
                    in_flight[ref] = (idle.pop(), task, time.perf_counter())
                done, _ = self.ray.wait(list(in_flight), num_returns=1, timeout=self.poll_s)
                for ref in done:
                    actor, task, _since = in_flight.pop(ref)
                    outcome, alive = self._result(ref, task)
                    if alive:
                        idle.append(actor)
                    else:
                        self._replace(actor, actors, idle, bool(pending))
                    yield outcome
                yield from self._expire(in_flight, actors, idle, bool(pending))
        finally:
            for a in actors:
                self.ray.kill(a)
            if self.started:
                self.ray.shutdown()

    def _expire(self, in_flight: dict, actors: list, idle: list, more: bool) -> Iterator[Outcome]:
        """Documents past the per-document timeout: their actors are killed (a task cannot be interrupted inside
        an actor) and replaced while work remains, and each document is recorded as timed out."""
        for ref, (actor, task, since) in list(in_flight.items()):
            if self.overdue(since):
                del in_flight[ref]
                self._replace(actor, actors, idle, more)
                yield self.timed_out(task, "ray")

    def _replace(self, actor, actors: list, idle: list, more: bool) -> None:
        """Kill `actor` and, when documents are still to be handed out, start a fresh one in its place."""
        self.ray.kill(actor)
        if actor in actors:
            actors.remove(actor)
        if more and not self.stopping:
            actors.append(fresh := self._start(1)[0])
            idle.append(fresh)

    def _result(self, ref, task: Task) -> tuple[Outcome, bool]:
        """(outcome, actor still usable)."""
        exc = self.ray.exceptions
        try:
            return self.ray.get(ref), True
        except exc.RayActorError as e:
            return failed(task, f"Ray actor died while processing this document ({type(e).__name__})", "WorkerCrash", True), False
        except exc.RayError as e:
            return failed(task, f"Ray task failed: {e}", type(e).__name__, True), True
