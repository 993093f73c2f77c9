#!/usr/bin/env bash
# Runs once, on an empty data volume: MLflow's database, Optuna's and the prediction log's, each
# owned by a login of its own that can connect to nothing else, and a superuser that logs in only through the
# local socket. Passwords come from the compose secrets in /run/secrets.
set -euo pipefail
secrets_dir=${LAB_SECRETS_DIR:-/run/secrets}
for name in MLFLOW_DB_USER MLFLOW_DB_NAME OPTUNA_DB_USER OPTUNA_DB_NAME PREDICTIONS_DB_USER \
  PREDICTIONS_DB_NAME PREFECT_DB_USER PREFECT_DB_NAME; do
  if [[ -z ${!name:-} ]]; then
    echo "postgres: $name is not set; copy .env.example to .env and fill it in" >&2
    exit 1
  fi
done
for secret in mlflow_db_password optuna_db_password predictions_db_password prefect_db_password; do
  if [[ ! -s $secrets_dir/$secret ]]; then
    echo "postgres: the secret $secrets_dir/$secret is missing or empty; set its password in .env" >&2
    exit 1
  fi
done
# psql's :"name" and :'value' quote the values, so any name or password is safe here.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  -v mlflow_user="$MLFLOW_DB_USER" -v mlflow_db="$MLFLOW_DB_NAME" \
  -v mlflow_password="$(cat "$secrets_dir/mlflow_db_password")" \
  -v optuna_user="$OPTUNA_DB_USER" -v optuna_db="$OPTUNA_DB_NAME" \
  -v optuna_password="$(cat "$secrets_dir/optuna_db_password")" \
  -v predictions_user="$PREDICTIONS_DB_USER" -v predictions_db="$PREDICTIONS_DB_NAME" \
  -v predictions_password="$(cat "$secrets_dir/predictions_db_password")" \
  -v prefect_user="$PREFECT_DB_USER" -v prefect_db="$PREFECT_DB_NAME" \
  -v prefect_password="$(cat "$secrets_dir/prefect_db_password")" <<'SQL'
CREATE ROLE :"mlflow_user" LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE :"mlflow_db" OWNER :"mlflow_user";
REVOKE ALL ON DATABASE :"mlflow_db" FROM PUBLIC;
CREATE ROLE :"optuna_user" LOGIN PASSWORD :'optuna_password';
CREATE DATABASE :"optuna_db" OWNER :"optuna_user";
REVOKE ALL ON DATABASE :"optuna_db" FROM PUBLIC;
CREATE ROLE :"predictions_user" LOGIN PASSWORD :'predictions_password';
CREATE DATABASE :"predictions_db" OWNER :"predictions_user";
REVOKE ALL ON DATABASE :"predictions_db" FROM PUBLIC;
CREATE ROLE :"prefect_user" LOGIN PASSWORD :'prefect_password';
CREATE DATABASE :"prefect_db" OWNER :"prefect_user";
REVOKE ALL ON DATABASE :"prefect_db" FROM PUBLIC;
SQL
# First match wins in pg_hba.conf: refuse the superuser on every network connection, ahead of
# the image's `host all all all scram-sha-256`. The local socket still lets it in.
superuser=${POSTGRES_USER:-postgres}
{
  printf 'host all %s all reject\nhost replication %s all reject\n' "$superuser" "$superuser"
  cat "$PGDATA/pg_hba.conf"
} > "$PGDATA/pg_hba.conf.new"
mv "$PGDATA/pg_hba.conf.new" "$PGDATA/pg_hba.conf"
echo "postgres: created $MLFLOW_DB_NAME (owner $MLFLOW_DB_USER), $OPTUNA_DB_NAME (owner" \
  "$OPTUNA_DB_USER), $PREDICTIONS_DB_NAME (owner $PREDICTIONS_DB_USER) and $PREFECT_DB_NAME" \
  "(owner $PREFECT_DB_USER); $superuser logs in" \
  "through the local socket only"
