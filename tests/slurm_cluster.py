"""A real single-node Slurm cluster for the tests, with real job accounting, in a temporary folder.

munged, MariaDB, slurmdbd, slurmctld and slurmd run as daemons on free local ports; clients find
the cluster through ``SLURM_CONF`` (``env()``). Needs Debian's packages (``.ci/run`` installs them):
``slurmctld slurmd slurm-client slurmdbd munge mariadb-server``. There is no systemd here: the
daemons are started by hand and stopped by their pidfiles.

Accounting is real (slurmdbd on MariaDB, ~4 s to start) because submitit learns a job's end state
from ``sacct``: without it a job killed hard leaves a sweep waiting forever (docs/sweeps.md).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "mariadbd", "mariadb-install-db", "slurmdbd", "slurmctld", "slurmd", "sbatch", "sacct")
CLUSTER = "betavae"
NODE_CPUS = 4          # more than this machine's 2 cores (config_overrides): the fault tests run 4 small jobs at once
NODE_MEMORY_MB = 8000


def missing_binaries() -> list[str]:
    return [name for name in DAEMONS if shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin") is None]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, what: str, timeout: float = 30.0, log: Path | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.1)
    tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s\n{tail}")


class SlurmCluster:
    """``start()``, ``stop()``; ``env()`` for clients; ``partition`` is the one partition's name."""

    partition = "debug"

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="betavae-slurm-"))
        os.chmod(self.dir, 0o755)             # munged checks its socket folder's mode
        self.conf = self.dir / "slurm.conf"
        self.ports = {name: free_port() for name in ("mysql", "dbd", "ctld", "slurmd")}
        self.started: list[Path] = []         # pidfiles, in start order

    def env(self) -> dict:
        return {"SLURM_CONF": str(self.conf)}

    def _run(self, *command: str, timeout: float = 60) -> str:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **self.env()})
        if proc.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return proc.stdout

    def _daemon(self, name: str, *command: str, pidfile: Path, log: Path, ready=None) -> None:
        """Start a daemon that forks (or one started in the background here) and wait for its pidfile."""
        with open(self.dir / f"{name}.out", "w") as out:
            subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                             env={**os.environ, **self.env()})
        wait_for(lambda: pidfile.is_file() and pidfile.read_text().strip(), f"{name} (pidfile)", log=log)
        self.started.append(pidfile)
        if ready is not None:
            wait_for(ready, name, log=log)

    def start(self) -> None:
        d = self.dir
        self._write_configs()
        key = d / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        self._daemon("munged", "munged", "--force", f"--socket={d}/munge.sock", f"--key-file={key}",
                     f"--pid-file={d}/munged.pid", f"--log-file={d}/munged.log", f"--seed-file={d}/munged.seed",
                     pidfile=d / "munged.pid", log=d / "munged.log")
        # MariaDB without grant tables: a throwaway database on 127.0.0.1 that only this test uses.
        self._run("mariadb-install-db", f"--datadir={d}/mysql", "--user=root", "--auth-root-authentication-method=normal",
                  "--skip-test-db", timeout=120)
        self._daemon("mariadbd", "mariadbd", "--no-defaults", f"--datadir={d}/mysql", "--user=root",
                     "--skip-grant-tables", "--bind-address=127.0.0.1", f"--port={self.ports['mysql']}",
                     f"--socket={d}/mysql.sock", f"--pid-file={d}/mariadbd.pid", f"--log-error={d}/mariadbd.log",
                     "--innodb-flush-log-at-trx-commit=0", "--skip-log-bin",
                     pidfile=d / "mariadbd.pid", log=d / "mariadbd.log",
                     ready=lambda: (d / "mysql.sock").exists())
        self._daemon("slurmdbd", "slurmdbd", pidfile=d / "slurmdbd.pid", log=d / "slurmdbd.log",
                     ready=lambda: self._answers("sacctmgr", "-n", "list", "cluster"))
        self._run("sacctmgr", "-i", "add", "cluster", CLUSTER)
        self._daemon("slurmctld", "slurmctld", "-f", str(self.conf), pidfile=d / "slurmctld.pid",
                     log=d / "slurmctld.log")
        self._daemon("slurmd", "slurmd", "-f", str(self.conf), "-N", "localhost", pidfile=d / "slurmd.pid",
                     log=d / "slurmd.log", ready=lambda: self.node_state() == "idle")

    def _answers(self, *command: str) -> bool:
        return subprocess.run(command, capture_output=True, timeout=30, env={**os.environ, **self.env()}).returncode == 0

    def node_state(self) -> str:
        proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30,
                              env={**os.environ, **self.env()})
        return proc.stdout.strip()

    def stop(self) -> None:
        """Every job cancelled and gone from the queue (its slurmstepd would outlive slurmd), then
        every daemon, last started first, by its pidfile; then the folder."""
        if self.started and self.started[-1].name == "slurmd.pid":
            try:
                self._run("scancel", "--full", "--user=root", timeout=30)
                wait_for(lambda: not subprocess.run(["squeue", "-h"], capture_output=True, text=True, timeout=30,
                                                    env={**os.environ, **self.env()}).stdout.strip(),
                         "an empty queue", timeout=60)
            except (RuntimeError, subprocess.TimeoutExpired):
                pass                                               # stopped anyway; the daemons go next
        for pidfile in reversed(self.started):
            try:
                pid = int(pidfile.read_text().strip())
                os.kill(pid, signal.SIGTERM)
            except (OSError, ValueError):
                continue
            deadline = time.time() + 15
            while time.time() < deadline and _alive(pid):
                time.sleep(0.1)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.started.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _write_configs(self) -> None:
        d, p = self.dir, self.ports
        auth = f"AuthType=auth/munge\nAuthInfo=socket={d}/munge.sock\n"
        self.conf.write_text(f"""ClusterName={CLUSTER}
SlurmctldHost=localhost
SlurmctldPort={p['ctld']}
SlurmdPort={p['slurmd']}
SlurmUser=root
SlurmdUser=root
{auth}ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort={p['dbd']}
AccountingStoragePass={d}/munge.sock
ReturnToService=2
SlurmdParameters=config_overrides
MinJobAge=600
KillWait=5
MpiDefault=none
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs={NODE_CPUS} RealMemory={NODE_MEMORY_MB} State=UNKNOWN
PartitionName={self.partition} Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""")
        dbd = self.dir / "slurmdbd.conf"     # slurmdbd reads it from SLURM_CONF's folder
        dbd.write_text(f"""{auth}DbdHost=localhost
DbdPort={p['dbd']}
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={p['mysql']}
StorageUser=root
StorageLoc=slurm_acct_db
PidFile={d}/slurmdbd.pid
LogFile={d}/slurmdbd.log
""")
        os.chmod(dbd, 0o600)
        for sub in ("state", "spool"):
            (d / sub).mkdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A zombie child of this process counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
