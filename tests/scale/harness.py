"""Several hosts, proven: ``python -m tests.scale.harness`` (``make test-scale``).

A "services" network namespace runs Redis and a private PostgreSQL cluster; each of three
worker namespaces (veth pairs to the services, 10.77.N.0/24) runs ``asyncjobs_worker
--concurrency 2`` on its own queue and ``default``; host1 and host3 run ``asyncjobs_scheduler``
too. The harness enqueues ``--jobs`` jobs, SIGKILLs every process of host1 once a fifth of
them ran, cuts host2's link for ``--cut`` seconds, proves host2 comes back (a job on its own
queue), waits until every job ended, and checks: every job
``succeeded``; every job ran once, except runs cut short by the faults (a run on the killed
host, or one that began on the cut host before its link came back); nothing left
``queued``/``running``. It prints the time to recover and the throughput, and exits 1 if a
check fails. Needs root, ``ip netns``, redis-server and Debian's PostgreSQL binaries;
otherwise it prints ``SKIPPED: <reason>`` and exits 0.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, NamedTuple

from . import netns, services

ROOT = Path(__file__).resolve().parents[2]

#: A line of a host's log (see ``settings.LOGGING``): time, level, event.
LOG_LINE = re.compile(r"(?P<time>\d+\.\d+) (?P<level>[A-Z]+) (?P<event>[a-z_]+\.[a-z_]+)")

#: One run of a job: (host, attempt, when its function began).
RunRecord = tuple[str, int, float]


class JobRow(NamedTuple):
    attempts: int
    worker: str
    failed: Any
    started: float
    finished: float


def _ran_elsewhere(job_runs: list[RunRecord], row: JobRow, host: str) -> bool:
    """Whether the job ran on ``host`` but its last attempt ended on another host."""
    return any(run[0] == host for run in job_runs) and not row.worker.startswith(f"{host}-")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--cut", type=float, default=30.0, help="Seconds host2's link stays down.")
    parser.add_argument("--heartbeat-interval", type=float, default=2.0)
    parser.add_argument("--heartbeat-timeout", type=float, default=10.0)
    parser.add_argument("--recovery-interval", type=float, default=5.0)
    parser.add_argument("--recovery-grace", type=float, default=10.0)
    parser.add_argument(
        "--freeze",
        action="store_true",
        help="Freeze host2's processes (SIGSTOP, then SIGCONT) for --cut seconds instead of cutting its link.",
    )
    parser.add_argument("--kill-at", type=float, default=0.2, help="Fraction of the jobs run when host1 is killed.")
    parser.add_argument("--job-ms", type=float, default=0.0, help="Milliseconds each job sleeps (0: a no-op).")
    parser.add_argument("--timeout", type=float, default=300.0, help="Give up waiting for the jobs after this.")
    parser.add_argument("--keep", action="store_true", help="Keep the run's folder (logs, data) afterwards.")
    args = parser.parse_args(argv)
    reason = netns.unavailable() or services.unavailable()
    if reason:
        print(f"SKIPPED: {reason}")
        return 0
    folder = Path(tempfile.mkdtemp(prefix="asyncjobs-scale-"))
    lab = netns.Lab()
    svc: services.Services | None = None
    try:
        svc = services.Services(lab.namespace("svc"), folder)
        svc.start()
        return Run(args, lab, svc, folder).run()
    finally:
        if svc is not None:
            svc.stop()
        problems = lab.close()
        if problems:
            print("cleanup problems:", *problems, sep="\n  ")
        if args.keep:
            print(f"run folder kept: {folder}")
        else:
            subprocess.run(["rm", "-rf", str(folder)], check=False)


class Run:
    def __init__(self, args: argparse.Namespace, lab: netns.Lab, svc: services.Services, folder: Path) -> None:
        self.args = args
        self.lab = lab
        self.svc = svc
        self.folder = folder
        self.hosts = ["host1", "host2", "host3"]
        self.links: dict[str, netns.Link] = {}
        self.host_ns: dict[str, netns.Namespace] = {}
        self.events: dict[str, float] = {}
        self.failures: list[str] = []

    def environment(self, host: str, address: str) -> dict[str, str]:
        a = self.args
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.scale.settings",
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": self.svc.database_url(address),
            "REDIS_URL": self.svc.redis_url(address),
            "ASYNCJOBS_SCALE_HOST": host,
            "ASYNCJOBS_SCALE_HOSTS": ",".join(self.hosts),
            "ASYNCJOBS_SCALE_HEARTBEAT_INTERVAL": str(a.heartbeat_interval),
            "ASYNCJOBS_SCALE_HEARTBEAT_TIMEOUT": str(a.heartbeat_timeout),
            "ASYNCJOBS_SCALE_RECOVERY_INTERVAL": str(a.recovery_interval),
            "ASYNCJOBS_SCALE_RECOVERY_GRACE": str(a.recovery_grace),
            "ASYNCJOBS_SCALE_JOB_MS": str(a.job_ms),
        }

    # -- the run ----------------------------------------------------------------------------

    def run(self) -> int:
        os.environ.update(self.environment("harness", "127.0.0.1"))
        with self.svc.ns.entered():
            import django  # lazy: settings come from the environment set just above

            django.setup()
            from django.core.management import call_command

            call_command("migrate", run_syncdb=True, verbosity=0)
            self.start_hosts()
            try:
                self.exercise()
                self.check()
            finally:
                from django.db import connections

                connections.close_all()
        self.report_logs()
        if self.failures:
            print("\nFAILED:", *self.failures, sep="\n  ")
            return 1
        print("\nPASSED: every check held.")
        return 0

    def start_hosts(self) -> None:
        python = sys.executable
        for number, host in enumerate(self.hosts, start=1):
            ns = self.lab.namespace(host)
            self.host_ns[host] = ns
            link = self.lab.link(self.svc.ns, ns, number, str(number))
            self.links[host] = link
            env = self.environment(host, link.near_address)
            worker = [python, "-m", "django", "asyncjobs_worker", host, "default", "--concurrency", "2"]
            worker += ["--name", host, "-v", "0"]
            commands = [("worker", worker)]
            if number != 2:  # host2 is the one cut off: recovery goes on meanwhile on host3
                commands.append(("scheduler", [python, "-m", "django", "asyncjobs_scheduler", "-v", "0"]))
            for role, command in commands:
                log = open(self.folder / f"{host}-{role}.log", "wb")  # noqa: SIM115 - the process keeps it
                ns.spawn(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        # Every host answers: one job on each host's own queue.
        started = time.time()
        self.probe(self.hosts, "start")
        print(f"{len(self.hosts)} hosts up ({time.time() - started:.1f}s to the first job on each)")

    def probe(self, hosts: list[str], label: str, timeout: float = 120.0) -> float:
        """Run one job on each host's own queue; the seconds until all succeeded."""
        from django_asyncjobs.models import Job, JobStatus

        from .jobs import record_run

        started = time.time()
        ids = [record_run.enqueue(-1, queue=host).pk for host in hosts]
        while Job.objects.filter(pk__in=ids, status=JobStatus.SUCCEEDED).count() < len(ids):
            if time.time() - started > timeout:
                raise SystemExit(f"probe {label}: hosts {hosts} ran no job within {timeout:g}s")
            time.sleep(0.2)
        return time.time() - started

    def exercise(self) -> None:
        from .jobs import record_run
        from .models import Run as RunRow

        total = self.args.jobs
        self.events["enqueue"] = time.time()
        for first in range(0, total, 2000):
            record_run.enqueue_many([(n,) for n in range(first, min(total, first + 2000))], queue="default")
        self.events["enqueued"] = time.time()
        print(f"{total} jobs enqueued in {self.events['enqueued'] - self.events['enqueue']:.1f}s")
        while RunRow.objects.count() < total * self.args.kill_at:
            if time.time() - self.events["enqueue"] > self.args.timeout:
                raise SystemExit(f"fewer than {total * self.args.kill_at:.0f} jobs ran in {self.args.timeout:g}s")
            time.sleep(0.1)
        self.events["kill"] = time.time()
        killed = self.host_ns["host1"].kill_all(signal.SIGKILL)
        print(f"host1: SIGKILLed {len(killed)} processes (worker supervisor, 2 workers, scheduler)")
        time.sleep(2)
        cut = self.links["host2"]
        self.events["link_down"] = time.time()
        if self.args.freeze:
            frozen = self.host_ns["host2"].kill_all(signal.SIGSTOP)
            print(f"host2: {len(frozen)} processes frozen (SIGSTOP) for {self.args.cut:g}s")
        else:
            cut.set("down")
            print(f"host2: link {cut.near} down for {self.args.cut:g}s")
        time.sleep(self.args.cut)
        if self.args.freeze:
            self.host_ns["host2"].kill_all(signal.SIGCONT)
        else:
            cut.set("up")
        self.events["link_up"] = time.time()
        back = self.probe(["host2"], "after the link came back")
        self.events["host2_back"] = self.events["link_up"] + back
        print(f"host2: back; a job on its queue ran {back:.1f}s later")
        self.wait_until_done()

    def wait_until_done(self) -> None:
        from django_asyncjobs.models import Job, JobStatus

        unfinished = [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SCHEDULED]
        deadline = self.events["enqueue"] + self.args.timeout
        while (left := Job.objects.filter(status__in=unfinished).count()) and time.time() < deadline:
            time.sleep(0.5)
        self.events["done"] = time.time()
        if left:
            self.failures.append(f"{left} job(s) still unfinished {self.args.timeout:g}s after the enqueue")

    # -- the checks -------------------------------------------------------------------------

    def check(self) -> None:
        from django_asyncjobs.engine.broker import waiting_ids
        from django_asyncjobs.models import Job, JobStatus

        from .models import Run as RunRow

        jobs = Job.objects.filter(name="tests.scale.jobs.record_run").exclude(args=[-1])
        statuses = Counter(jobs.values_list("status", flat=True))
        print(f"\njobs by status: {dict(statuses)}")
        if statuses.get(JobStatus.SUCCEEDED, 0) != self.args.jobs or len(statuses) != 1:
            self.failures.append(f"not every job succeeded: {dict(statuses)}")
        runs: dict[str, list[RunRecord]] = defaultdict(list)
        for job_id, host, attempt, began in RunRow.objects.values_list("job_id", "host", "attempt", "began"):
            runs[str(job_id)].append((host, attempt, began))
        fields = ("pk", "attempts", "worker", "failed_attempts", "started_at", "finished_at")
        rows = {
            str(pk): JobRow(attempts, worker, failed, started.timestamp(), finished.timestamp())
            for pk, attempts, worker, failed, started, finished in jobs.values_list(*fields)
            if started is not None and finished is not None
        }
        never = [pk for pk in rows if pk not in runs]
        if never:
            self.failures.append(f"{len(never)} job(s) never ran, e.g. {never[:3]}")
        counts = Counter(len(runs[pk]) for pk in rows if pk in runs)
        print(f"runs per job: {dict(sorted(counts.items()))}")
        explained, unexplained = self.classify_reruns({pk: runs[pk] for pk in rows if len(runs.get(pk, [])) > 1})
        print(f"jobs run more than once: {sum(explained.values())} explained by the faults {dict(explained)}")
        if unexplained:
            self.failures.append(f"{len(unexplained)} job(s) ran twice without a fault to explain it, e.g.")
            link_up = self.events["link_up"]
            for pk in unexplained[:5]:
                ordered = sorted(runs[pk], key=lambda r: r[2])
                shown = [f"{h} attempt {a} began {b - link_up:+.1f}s" for h, a, b in ordered]
                self.failures.append(f"  {pk}: {'; '.join(shown)} (from the link's return)")
        leftover = {queue: len(waiting_ids(queue)) for queue in ["default", *self.hosts]}
        print(f"messages left in Redis (duplicates recovery pushed, dropped when popped): {leftover}")
        self.report_times(rows, runs)

    def classify_reruns(self, reruns: dict[str, list[RunRecord]]) -> tuple[Counter[str], list[str]]:
        """A job may run again only after a run cut short by a fault: one on the killed host,
        or one that began on the cut host before its link came back (its lease may have
        expired meanwhile). Anything else ran a job twice."""
        explained: Counter[str] = Counter()
        unexplained = []
        for pk, job_runs in reruns.items():
            ordered = sorted(job_runs, key=lambda run: run[2])
            earlier = ordered[:-1]
            if all(self.cut_short(host, began) for host, _, began in earlier):
                explained["+".join(sorted({host for host, _, _ in earlier}))] += 1
            else:
                unexplained.append(pk)
        return explained, unexplained

    def cut_short(self, host: str, began: float) -> bool:
        if host == "host1":
            return True
        return host == "host2" and began < self.events["link_up"]

    def report_times(self, rows: dict[str, JobRow], runs: dict[str, list[RunRecord]]) -> None:
        e = self.events
        host1 = {
            pk for pk, row in rows.items() if "host1-" in str(row.failed) or _ran_elsewhere(runs[pk], row, "host1")
        }
        host2 = {
            pk
            for pk, row in rows.items()
            if "host2-" in str(row.failed)
            or (row.finished > e["link_down"] and any(h == "host2" and b < e["link_down"] for h, _, b in runs[pk]))
        }
        first = min(row.started for row in rows.values())
        last = max(row.finished for row in rows.values())
        before_kill = sum(1 for job_runs in runs.values() for r in job_runs if r[2] < e["kill"])
        print("\ntimes (seconds):")
        for label, fault, affected in (("kill of host1", "kill", host1), ("cut of host2's link", "link_down", host2)):
            if not affected:
                print(f"  {label}: no job affected")
                continue
            restarted = max(rows[pk].started for pk in affected) - e[fault]
            done = max(rows[pk].finished for pk in affected) - e[fault]
            print(
                f"  {label}: {len(affected)} jobs affected; the last of them started again {restarted:.1f} s"
                f" after it, and was done {done:.1f} s after it"
            )
        print(f"  link up -> a job on host2's own queue done: {e['host2_back'] - e['link_up']:.1f}")
        print(f"  {self.args.jobs} jobs: first start -> last finish {last - first:.1f}")
        processes = 2 * len(self.hosts)
        print(
            f"throughput: {self.args.jobs / (last - first):.0f} jobs/s overall (faults included);"
            f" {before_kill / (e['kill'] - first):.0f} jobs/s with {processes} worker processes before the kill"
        )

    def report_logs(self) -> None:
        """The warnings and errors the hosts logged, by event."""
        events: Counter[str] = Counter()
        for log in sorted(self.folder.glob("host*.log")):
            for line in log.read_text(errors="replace").splitlines():
                timed = LOG_LINE.match(line)
                if timed and timed["level"] in ("WARNING", "ERROR", "CRITICAL"):
                    events[f"{log.stem}: {timed['event']}"] += 1
                elif line.startswith("Traceback"):
                    events[f"{log.stem}: Traceback"] += 1
        print("\nevents the hosts logged (WARNING and above):")
        for key, count in sorted(events.items()):
            print(f"  {key}: {count}")


if __name__ == "__main__":
    sys.exit(main())
