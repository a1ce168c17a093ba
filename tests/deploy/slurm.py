"""A real single-node SLURM for the deployment tests, in a scratch directory.

:class:`SingleNodeSlurm` writes a ``slurm.conf`` for one node with this machine's CPUs
(``select/cons_tres`` allocating CPUs and memory, ``proctrack/linuxproc``, ``task/none``, no
accounting), makes a munge key, and starts ``munged``, ``slurmctld`` and ``slurmd`` in the
foreground as children of the test process, so their PIDs are known exactly. Everything is
bound to 127.0.0.1 on free ports, and state, spool, sockets and logs stay in the scratch
directory: the machine's own ``/etc/slurm`` and ``/etc/munge`` are never read. The clients
(``sbatch``, ``squeue``, ``scancel``, dask-jobqueue's submissions, jobs that submit jobs)
find this cluster through ``SLURM_CONF``, which :meth:`SingleNodeSlurm.env` gives.

:meth:`SingleNodeSlurm.stop` cancels every job, waits for the queue to empty, then ends the
three daemons it started, by PID. It fails when any process of the cluster is left: a
daemon, or anything running in a job (slurmstepd, job scripts, dask workers), all of which
carry the cluster's ``SLURM_CONF`` in their environment.

Starting ``slurmd`` needs root (it runs the jobs as their users) and the Debian/Ubuntu
packages; :func:`unavailable` says which is missing, as a reason to skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

INSTALL = "apt-get install slurmctld slurmd slurm-client munge"
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "sinfo", "scontrol")
NODE = "localhost"
PARTITION = "compute"  # the partition named by deploy/cluster-slurm.yaml


def _program(name: str) -> str | None:
    """Path of a SLURM or munge program (the daemons live in /usr/sbin, often off PATH)."""
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/usr/local/sbin", "/sbin"):
        if os.access(f"{folder}/{name}", os.X_OK):
            return f"{folder}/{name}"
    return None


def unavailable() -> str | None:
    """Why a single-node SLURM cannot start here (a skip reason), or None when it can."""
    missing = [name for name in (*DAEMONS, *CLIENTS) if _program(name) is None]
    if missing:
        return f"real SLURM tests need {', '.join(missing)}: {INSTALL} (as root)"
    if os.geteuid() != 0:
        return "real SLURM tests start slurmd, which runs jobs as their users: run them as root"
    return None


def node_memory_mb() -> int:
    """Memory the node offers, in MB: 95 % of MemTotal, below what slurmd measures (a node
    configured with more memory than slurmd finds is drained)."""
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 95 // 100 // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def node_cpus() -> int:
    return len(os.sched_getaffinity(0))


def slurm_conf(
    root: str | Path, *, cpus: int, memory_mb: int, ctld_port: int, slurmd_port: int
) -> str:
    """``slurm.conf`` of a one-node cluster whose state, spool, logs and sockets are under
    ``root``, with both daemons on 127.0.0.1."""
    return f"""\
ClusterName=bigpaint-test
SlurmctldHost={NODE}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
PlugStackConfig={root}/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/builtin
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
KillWait=5
InactiveLimit=0
NodeName={NODE} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _parent(pid: int) -> int:
    """Parent PID of ``pid`` (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


class SlurmError(RuntimeError):
    """The single-node cluster did not start, or did not stop cleanly."""


class SingleNodeSlurm:
    """munged, slurmctld and slurmd for one node, configured and run under ``root``.

    Parameters
    ----------
    root : Path
        Scratch directory for the config, key, state, spool, sockets and logs.
    start_timeout : float
        Seconds to wait for the node to turn idle.
    """

    def __init__(self, root: Path, *, start_timeout: float = 60.0) -> None:
        self.root = Path(root)
        self.start_timeout = start_timeout
        self.conf = self.root / "slurm.conf"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.cpus = node_cpus()
        self.memory_mb = node_memory_mb()

    # -- lifecycle -------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """Environment variables that point SLURM's clients at this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def start(self) -> SingleNodeSlurm:
        reason = unavailable()
        if reason:
            raise SlurmError(reason)
        for sub in ("munge", "state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "munge", 0o700)  # munged refuses a socket directory others write
        (self.root / "plugstack.conf").write_text("")
        self.conf.write_text(
            slurm_conf(
                self.root,
                cpus=self.cpus,
                memory_mb=self.memory_mb,
                ctld_port=free_port(),
                slurmd_port=free_port(),
            )
        )
        key = self.root / "munge" / "munge.key"
        subprocess.run(
            [_program("mungekey") or "mungekey", "--create", f"--keyfile={key}"],
            check=True,
            capture_output=True,
        )
        os.chmod(key, 0o400)
        try:
            munge = self.root / "munge"
            self._spawn(
                "munged",
                "--foreground",
                "--force",
                f"--socket={munge}/munge.socket",
                f"--key-file={key}",
                f"--pid-file={munge}/munged.pid",
                f"--seed-file={munge}/munged.seed",
                f"--log-file={self.root}/log/munged.log",
            )
            self._wait_for(lambda: (munge / "munge.socket").exists(), "munged's socket")
            self._spawn("slurmctld", "-D", "-i", "-f", str(self.conf))
            self._spawn("slurmd", "-D", "-N", NODE, "-f", str(self.conf))
            self._wait_for(self._node_idle, f"node {NODE} idle in sinfo")
        except BaseException:
            self.stop(check=False)
            raise
        return self

    def _spawn(self, name: str, *args: str) -> None:
        with open(self.root / "log" / f"{name}.out", "wb") as log:
            self.procs[name] = subprocess.Popen(
                [_program(name) or name, *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env()},
                start_new_session=True,  # a Ctrl-C of the test run reaches them via stop()
            )

    def _wait_for(self, predicate, what: str) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise SlurmError(f"{name} exited with {proc.returncode}: {self.logs(name)}")
            if predicate():
                return
            time.sleep(0.2)
        raise SlurmError(f"no {what} after {self.start_timeout:.0f} s: {self.logs()}")

    def _node_idle(self) -> bool:
        out = self.run("sinfo", "-h", "-n", NODE, "-o", "%t", check=False)
        return out.returncode == 0 and out.stdout.strip() == "idle"

    def logs(self, *names: str) -> str:
        """The tail of the daemons' logs, for failure messages."""
        parts = []
        for name in names or DAEMONS:
            for path in (self.root / "log").glob(f"{name}*"):
                lines = path.read_text(errors="replace").splitlines()[-15:]
                parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    def daemon_pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.procs.items()}

    def stop(self, *, check: bool = True) -> None:
        """Cancel every job, wait for the queue to empty, end the daemons by PID; then no
        process of this cluster may be left (else it is killed and, with ``check``,
        reported)."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            if self.job_ids():
                self.run("scancel", *self.job_ids(), check=False)
            self.wait_until(lambda: not self.job_ids(), timeout=30)
        for name in reversed(list(self.procs)):
            self._end(self.procs[name])
        left = self.processes()
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if check and left:
            raise SlurmError(f"still running after SLURM stopped: {left}")

    @staticmethod
    def _end(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)

    def processes(self) -> dict[int, str]:
        """Live processes of this cluster, ``{pid: command line}``: the daemons and all
        that run in its jobs (slurmstepd, job scripts, dask workers), found by the
        ``SLURM_CONF`` in their environment, which slurmd sets for every job. Children of
        this process that inherited the variable (a local Dask cluster started while the
        tests point at this SLURM) are not the cluster's and are left out."""
        mark = f"SLURM_CONF={self.conf}".encode()
        found = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or not self._of_cluster(int(entry)):
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as fh:
                    env = fh.read().split(b"\0")
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    cmd = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:  # ended meanwhile, or not ours to read
                continue
            if mark in env and alive(int(entry)):
                found[int(entry)] = cmd
        return found

    def _of_cluster(self, pid: int) -> bool:
        """Whether ``pid`` is a daemon, descends from one, or was handed to init (job
        steps are): not a process this test process started itself."""
        daemons = {p.pid for p in self.procs.values()}
        while pid > 1:
            if pid in daemons:
                return True
            if pid == os.getpid():
                return False
            pid = _parent(pid)
        return True

    # -- clients ---------------------------------------------------------------------------

    def run(self, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess[str]:
        """A SLURM client command against this cluster."""
        return subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            check=check,
            env={**os.environ, **self.env(), **kw.pop("env", {})},
            **kw,
        )

    def sbatch(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
        out = self.run("sbatch", "--parsable", *args, cwd=cwd, env=env or {})
        return out.stdout.strip().split(";")[0]

    def job_ids(self) -> list[str]:
        """Jobs that are pending, running or completing."""
        out = self.run("squeue", "-h", "-o", "%i", check=False)
        return out.stdout.split()

    def jobs(self) -> dict[str, tuple[str, str, str]]:
        """Every job the controller still knows: id -> (name, state, reason)."""
        out = self.run("squeue", "-h", "-t", "all", "-o", "%i|%j|%T|%r")
        rows = (line.split("|") for line in out.stdout.splitlines() if line)
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    def state(self, job: str) -> str:
        return self.jobs().get(job, ("", "GONE", ""))[1]

    def exit_code(self, job: str) -> int:
        """Exit status of an ended job's batch script (``scontrol show job``'s ExitCode)."""
        out = self.run("scontrol", "-o", "show", "job", job).stdout
        code = next(f for f in out.split() if f.startswith("ExitCode="))
        return int(code.split("=", 1)[1].split(":")[0])

    def wait(self, job: str, timeout: float = 120.0) -> str:
        """Wait for ``job`` to end; its final state."""
        ended = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}
        if not self.wait_until(lambda: self.state(job) in ended | {"GONE"}, timeout):
            raise TimeoutError(f"job {job} still {self.state(job)} after {timeout} s")
        return self.state(job)

    @staticmethod
    def wait_until(predicate, timeout: float = 60.0, every: float = 0.2) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(every)
        return bool(predicate())

    def batch_script(self, job: str) -> str:
        """The script ``sbatch`` received for ``job``, as slurmctld stored it."""
        return self.run("scontrol", "write", "batch_script", job, "-").stdout

    def sinfo(self) -> str:
        return self.run("sinfo", "-N", "-o", "%N %P %c %m %t").stdout
