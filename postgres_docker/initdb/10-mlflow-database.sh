#!/usr/bin/env bash
# Runs once, on an empty data volume: MLflow's database, owned by its own login, and a
# database for Optuna's shared studies (`mlops-lab tune` workers) under the same login.
set -euo pipefail
for name in MLFLOW_DB_USER MLFLOW_DB_PASSWORD MLFLOW_DB_NAME; do
  if [[ -z ${!name:-} ]]; then
    echo "postgres: $name is not set; copy .env.example to .env and fill it in" >&2
    exit 1
  fi
done
# psql's :"name" and :'value' quote the values, so any password is safe here.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  -v user="$MLFLOW_DB_USER" -v password="$MLFLOW_DB_PASSWORD" -v db="$MLFLOW_DB_NAME" \
  -v optuna_db="${OPTUNA_DB_NAME:-optuna}" <<'SQL'
CREATE ROLE :"user" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"user";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
CREATE DATABASE :"optuna_db" OWNER :"user";
REVOKE ALL ON DATABASE :"optuna_db" FROM PUBLIC;
SQL
echo "postgres: created databases $MLFLOW_DB_NAME and ${OPTUNA_DB_NAME:-optuna} owned by $MLFLOW_DB_USER"
