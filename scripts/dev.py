"""`make run`: embedded servers, migrations, demo users, then web, workers, beat and Flower.

Ctrl-C stops the processes and then the embedded servers; their data stays under var/.
"""

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from config import embedded  # noqa: E402

PYTHON = sys.executable


def manage(*args: str, env: dict[str, str]) -> str:
    """Run a management command; its output, or exit with its error."""
    result = subprocess.run([PYTHON, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def main() -> None:
    """Prepare everything, print where to look, run until Ctrl-C."""
    env = {**os.environ, "DEBUG": os.environ.get("DEBUG", "1")}
    env["PATH"] = f"{Path(PYTHON).parent}{os.pathsep}{env.get('PATH', '')}"  # the Procfile's celery
    host, port = env.setdefault("HOST", "127.0.0.1"), env.setdefault("PORT", "8000")
    flower_port = env.setdefault("FLOWER_PORT", "5555")
    var_dir = Path(env.setdefault("EMBEDDED_DIR", str(BASE_DIR / "var")))
    embedded_used = not env.get("DATABASE_URL") or not (env.get("REDIS_URL") or env.get("CELERY_BROKER_URL"))
    if embedded_used:
        urls = embedded.ensure_running(var_dir)
        print(f"PostgreSQL: {urls.database_url}\nRedis:      {urls.redis_url}")
    manage("migrate", "--noinput", env=env)
    manage("collectstatic", "--noinput", env=env)
    manage("setup_periodic_jobs", env=env)
    credentials = manage("setup_demo", env=env)
    flower_password = env.setdefault("FLOWER_PASSWORD", secrets.token_urlsafe(9))
    env.setdefault("FLOWER_BASIC_AUTH", f"admin:{flower_password}")
    base = f"http://{host}:{port}"
    print(
        f"""
  API:        {base}/api/v1/          (docs: {base}/api/docs/)
  Health:     {base}/api/v1/health/
  Admin:      {base}/admin/
  Flower:     http://{host}:{flower_port}/   (admin / {flower_password})
{credentials}
  Try:  curl -X POST {base}/api/v1/prompts/ -H "X-API-Key: <demo api key>" \\
             -H "Content-Type: application/json" -d '{{"prompt_text": "Hello"}}'
  Ctrl-C stops everything.
""",
        flush=True,
    )
    honcho = subprocess.Popen([str(Path(PYTHON).parent / "honcho"), "-f", "Procfile", "start"], cwd=BASE_DIR, env=env)
    try:
        honcho.wait()
    except KeyboardInterrupt:
        honcho.send_signal(signal.SIGINT)  # honcho stops its children
        honcho.wait()
    finally:
        if embedded_used:
            embedded.stop(var_dir)
            print("embedded servers stopped; data kept in", var_dir)


if __name__ == "__main__":
    main()
