# ContourTrial application image: web (gunicorn), Celery workers and management commands.
# Stage 1 builds the Cornerstone3D viewer bundle; the app serves it from /static/viewer/ (whitenoise).
FROM node:20-bookworm-slim AS viewer
WORKDIR /frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 postgresql-client && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
COPY --from=viewer /frontend/dist /app/frontend/dist
RUN SECRET_KEY=build PATIENT_ID_KEY=build CONTOURTRIAL_VAR_DIR=/app/var python manage.py collectstatic --noinput -v0 \
    && useradd --system --uid 1000 contourtrial && mkdir -p /data && chown contourtrial /data /app/var
USER contourtrial
ENV CONTOURTRIAL_VAR_DIR=/app/var STORAGE_DIR=/data
EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--workers", "4", "--access-logfile", "-"]
