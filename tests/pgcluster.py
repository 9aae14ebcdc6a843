"""A throwaway PostgreSQL 15 cluster for tests, on a Unix socket in a scratch directory (no TCP).

PostgreSQL refuses to run as root: as root the server runs as the Debian package's `postgres` user; psql, the
client, runs as the test. The superuser `postgres` logs in without a password (trust), every other role with its
password (scram-sha-256), so a test sees whether the setup Job really set it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
AVAILABLE = all((PG_BIN / tool).exists() for tool in ("initdb", "pg_ctl", "psql"))
HBA = "local all postgres trust\nlocal all all scram-sha-256\n"


@dataclass(frozen=True)
class Cluster:
    socket_dir: Path

    def env(self, *, user: str = "postgres", database: str = "umh_v2", password: str | None = None) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGHOST": str(self.socket_dir), "PGUSER": user}
        env |= {"PGDATABASE": database, "PGCONNECT_TIMEOUT": "5", "PGAPPNAME": "umhctl-tests"}
        return env | ({"PGPASSWORD": password} if password is not None else {})

    def psql(
        self,
        sql: str | None = None,
        *,
        file: Path | None = None,
        user: str = "postgres",
        role: str | None = None,
        database: str = "umh_v2",
        password: str | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run SQL (or a file) with ON_ERROR_STOP, as `user` (after SET ROLE `role`); stdout: unaligned tuples."""
        args = [str(PG_BIN / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"]
        args += ["-c", f'SET ROLE "{role}"'] if role is not None else []
        args += ["-f", str(file)] if file is not None else ["-c", sql or ""]
        proc = subprocess.run(
            args, env=self.env(user=user, database=database, password=password), capture_output=True, text=True
        )
        if check:
            assert proc.returncode == 0, f"psql as {user}: {proc.stderr}"
        return proc


@contextmanager
def cluster() -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix="umhctl-pg-", dir="/tmp"))
    as_server: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_server = ["runuser", "-u", "postgres", "--"]
    data = root / "data"

    def server(*args: str) -> None:
        subprocess.run(as_server + list(args), check=True, capture_output=True, text=True, timeout=60)

    try:
        server(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        server("sh", "-c", f"printf '{HBA}' > {data}/pg_hba.conf")
        options = f"-k {root} -c listen_addresses='' -c fsync=off -c synchronous_commit=off"
        server(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o", options, "start")
        yield Cluster(root)
    finally:
        subprocess.run(
            as_server + [str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)
