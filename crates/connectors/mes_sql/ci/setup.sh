#!/usr/bin/env bash
# The MES database connector's tests read a real MariaDB at 127.0.0.1:3306 (root, no password)
# besides the PostgreSQL that .ci/run starts. The connector itself needs no client library
# (sqlx speaks both protocols); this installs MariaDB's server when it is missing and starts it
# when it is down. Idempotent.
set -euo pipefail

ready() {
  mariadb-admin --protocol=tcp -h 127.0.0.1 -P 3306 -u root status >/dev/null 2>&1
}

if ready; then
  exit 0
fi

if [ ! -x /usr/sbin/mariadbd ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq mariadb-server mariadb-client >/dev/null
fi

# A fresh data directory needs its system tables before the first start.
if [ ! -d /var/lib/mysql/mysql ]; then
  mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
fi
install -d -o mysql -g mysql /run/mysqld

# The server's own configuration (/etc/mysql) listens on 127.0.0.1:3306; it drops to `mysql`.
start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
for _ in $(seq 1 60); do
  ready && break
  sleep 1
done
ready || { echo "MariaDB did not start on 127.0.0.1:3306"; exit 1; }

# The tests connect as root over TCP without a password.
mariadb --protocol=tcp -h 127.0.0.1 -u root -e "SELECT 1" >/dev/null 2>&1 || \
  mariadb -u root -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('')"
echo "MariaDB is up on 127.0.0.1:3306"
