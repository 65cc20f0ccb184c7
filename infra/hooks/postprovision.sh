#!/bin/sh
# azd post-provision hook: migrate the database and give the app's identity its database user.
#
# Runs as whoever ran `azd up` (signed in with `az login`), who is the SQL server's Entra admin: that
# sign-in applies sql-scripts/ (DDL) with go-sqlcmd. The app's user-assigned identity gets a contained
# user with data rights only (db_datareader, db_datawriter): it can read and write rows, never change
# the schema. Idempotent: the scripts record themselves in dbo.SchemaVersion and the user is created once.
set -eu

: "${AZURE_RESOURCE_GROUP:?azd provides it after provisioning}"
: "${SQL_SERVER_NAME:?}" "${SQL_SERVER_FQDN:?}" "${SQL_DATABASE:?}" "${APP_IDENTITY_NAME:?}"

if ! sqlcmd --version 2>/dev/null | grep -qi "sqlcmd: *[1-9]"; then
  echo "postprovision: hace falta go-sqlcmd (https://aka.ms/go-sqlcmd), con soporte de Entra ID" >&2
  exit 1
fi

# The deployer's address may reach the server only while this hook runs.
ip="$(curl -fsS https://api.ipify.org)"
az sql server firewall-rule create -g "$AZURE_RESOURCE_GROUP" -s "$SQL_SERVER_NAME" -n azd-postprovision \
  --start-ip-address "$ip" --end-ip-address "$ip" --output none
trap 'az sql server firewall-rule delete -g "$AZURE_RESOURCE_GROUP" -s "$SQL_SERVER_NAME" -n azd-postprovision --output none' EXIT

run() {
  sqlcmd -S "$SQL_SERVER_FQDN" -d "$SQL_DATABASE" --authentication-method ActiveDirectoryDefault -b -I "$@"
}

for script in sql-scripts/[0-9][0-9][0-9]_*.sql; do
  echo "postprovision: $script"
  run -i "$script"
done

run -Q "
IF DATABASE_PRINCIPAL_ID(N'$APP_IDENTITY_NAME') IS NULL
    CREATE USER [$APP_IDENTITY_NAME] FROM EXTERNAL PROVIDER;
ALTER ROLE db_datareader ADD MEMBER [$APP_IDENTITY_NAME];
ALTER ROLE db_datawriter ADD MEMBER [$APP_IDENTITY_NAME];
SELECT Version, Nombre FROM dbo.SchemaVersion ORDER BY Version;"
