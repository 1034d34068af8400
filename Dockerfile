# Production image: one image, several roles (web, worker, beat, flower) chosen by the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PORT=8000
WORKDIR /app

COPY requirements.txt requirements.lock ./
RUN pip install -r requirements.txt -c requirements.lock

COPY . .
RUN useradd --system --create-home app \
 && SECRET_KEY=build-only DATABASE_URL=postgres://build@localhost/build REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput \
 && chown -R app /app/var
USER app

EXPOSE 8000
# The ASGI server holds many open event streams in one process; add --workers for more cores.
CMD ["sh", "-c", "python -m uvicorn config.asgi:application --host 0.0.0.0 --port ${PORT} --lifespan off --proxy-headers --no-access-log"]
