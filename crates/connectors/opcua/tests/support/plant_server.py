"""A small plant served over OPC UA by the Python `asyncua` server, for the connector's tests.

The address space: Objects/Plant/Line1/{Press1, Press2, Oven1}, each machine with Temperature
(degrees Celsius), Speed (strokes per minute), Counter (parts made) and Running (the machine
state, a Boolean). Unless `--no-history`, every variable but Vibration is historized into an
SQLite file, so history outlives a restart of this process. Vibration is never historized: the
connector reads it from a subscription.

Endpoints: security None and Basic256Sha256 SignAndEncrypt (with a self-signed certificate made
on first start), one user name and password, and anonymous logins unless `--no-anonymous`.

Values change only when the test says so, on standard input, one command a line:

    tick N            write N rounds of new values to every variable
    stop MACHINE      set the machine's Running to false
    run MACHINE       set it to true

Each command is answered on standard output with one JSON line once the server's history holds
every value written. Every value written is also appended to the `--log` file as a JSON line
`{"node", "source_timestamp", "value"}`: the truth the tests compare Millrace's store with.
"""

import argparse
import asyncio
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from asyncua import Server, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.server.history_sql import HistorySQLite
from asyncua.server.user_managers import UserManager
from asyncua.crypto.permission_rules import User, UserRole
from cryptography.x509.oid import ExtendedKeyUsageOID

NAMESPACE = "urn:millrace:test-plant"
MACHINES = ["Press1", "Press2", "Oven1"]
HISTORIZED = ["Temperature", "Speed", "Counter", "Running"]


class Users(UserManager):
    """Accepts one user name and password, and anonymous logins when allowed."""

    def __init__(self, username, password, anonymous):
        self.username = username
        self.password = password
        self.anonymous = anonymous

    def get_user(self, iserver, username=None, password=None, certificate=None):
        if username is None:
            return User(role=UserRole.User) if self.anonymous else None
        if username == self.username and password == self.password:
            return User(role=UserRole.User)
        return None


class Plant:
    def __init__(self, server, idx, log_path, historized):
        self.server = server
        self.idx = idx
        self.log_path = log_path
        self.log = open(log_path, "a", encoding="utf-8")
        self.historized = historized
        self.variables = {}
        self.round = 0
        self.last_time = datetime.now(timezone.utc)

    async def build(self):
        objects = self.server.nodes.objects
        plant = await objects.add_object(ua.NodeId("Plant", self.idx), ua.QualifiedName("Plant", self.idx))
        line = await plant.add_object(
            ua.NodeId("Plant.Line1", self.idx), ua.QualifiedName("Line1", self.idx)
        )
        for machine in MACHINES:
            path = f"Plant.Line1.{machine}"
            node = await line.add_object(ua.NodeId(path, self.idx), ua.QualifiedName(machine, self.idx))
            for name, initial, vtype in [
                ("Temperature", 20.0, ua.VariantType.Double),
                ("Speed", 0.0, ua.VariantType.Double),
                ("Counter", 0, ua.VariantType.Int64),
                ("Running", True, ua.VariantType.Boolean),
                ("Vibration", 0.0, ua.VariantType.Double),
            ]:
                var = await node.add_variable(
                    ua.NodeId(f"{path}.{name}", self.idx),
                    ua.QualifiedName(name, self.idx),
                    ua.Variant(initial, vtype),
                )
                self.variables[(machine, name)] = (var, vtype)
        # A restarted server comes back with each variable's last value and its original source
        # timestamp, as a device would; a first start writes (and logs) the initial values.
        self.restored = self.restore()
        for (machine, name), (var, vtype) in self.variables.items():
            if (machine, name) in self.restored:
                value, stamp = self.restored[(machine, name)]
                await self.server.write_attribute_value(
                    var.nodeid,
                    ua.DataValue(ua.Variant(value, vtype), SourceTimestamp=stamp, ServerTimestamp=stamp),
                )
            else:
                await self.write(machine, name, await var.read_value())

    async def start(self):
        """Starts historizing; the server must be serving. History begins with the current values."""
        if not self.historized:
            return
        current = []
        for (machine, name), (var, _) in self.variables.items():
            if name in HISTORIZED:
                await self.server.historize_node_data_change(var, period=timedelta(days=30))
                current.append((var, (await var.read_data_value()).SourceTimestamp))
        await self.flushed(current)

    def restore(self):
        last = {}
        by_node = {var.nodeid.to_string(): key for key, (var, _) in self.variables.items()}
        if self.log_path.exists():
            for line in self.log_path.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                stamp = datetime.fromisoformat(entry["source_timestamp"].replace("Z", "+00:00"))
                last[by_node[entry["node"]]] = (entry["value"], stamp)
                self.last_time = max(self.last_time, stamp)
        return last

    def next_time(self):
        # Strictly increasing source timestamps at microsecond resolution, so no two values of
        # one node share one.
        now = datetime.now(timezone.utc)
        if now <= self.last_time:
            now = self.last_time + timedelta(microseconds=1)
        self.last_time = now
        return now

    async def write(self, machine, name, value):
        var, vtype = self.variables[(machine, name)]
        # A server reports (and historizes) changes only: a number equal to the current value
        # is nudged so that every write is a change.
        if vtype == ua.VariantType.Double and value == await var.read_value():
            value = round(value + 0.001, 6)
        stamp = self.next_time()
        await self.server.write_attribute_value(
            var.nodeid,
            ua.DataValue(ua.Variant(value, vtype), SourceTimestamp=stamp, ServerTimestamp=stamp),
        )
        self.log.write(
            json.dumps(
                {
                    "node": var.nodeid.to_string(),
                    "source_timestamp": stamp.isoformat().replace("+00:00", "Z"),
                    "value": value,
                }
            )
            + "\n"
        )
        self.log.flush()
        return var, stamp

    async def tick(self):
        self.round += 1
        written = []
        for offset, machine in enumerate(MACHINES):
            base = self.round + 10 * offset
            written.append(await self.write(machine, "Temperature", 40.0 + (base % 17) * 0.5))
            written.append(await self.write(machine, "Speed", 100.0 + (base % 7)))
            var, vtype = self.variables[(machine, "Counter")]
            count = (await var.read_value()) + 1
            written.append(await self.write(machine, "Counter", count))
            written.append(await self.write(machine, "Vibration", 0.1 * (base % 5)))
        return written

    async def flushed(self, written):
        """Waits until the history storage holds each historized value just written."""
        if not self.historized:
            await asyncio.sleep(0.05)
            return
        storage = self.server.iserver.history_manager.storage
        pending = [(var, stamp) for var, stamp in written if var.nodeid.Identifier.split(".")[-1] in HISTORIZED]
        for _ in range(500):
            still = []
            for var, stamp in pending:
                values, _ = await storage.read_node_history(var.nodeid, stamp, stamp + timedelta(microseconds=1), 1)
                if not values:
                    still.append((var, stamp))
            pending = still
            if not pending:
                return
            await asyncio.sleep(0.01)
        raise RuntimeError(f"history did not store {len(pending)} value(s)")


async def commands(plant):
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        words = line.decode().split()
        if not words:
            continue
        try:
            written = []
            if words[0] == "tick":
                for _ in range(int(words[1]) if len(words) > 1 else 1):
                    written += await plant.tick()
            elif words[0] in ("stop", "run"):
                written.append(await plant.write(words[1], "Running", words[0] == "run"))
            else:
                raise ValueError(f"unknown command {words[0]!r}")
            await plant.flushed(written)
            answer = {"ok": words[0], "written": len(written)}
        except Exception as err:  # the test reads the reason
            answer = {"error": str(err)}
        print(json.dumps(answer), flush=True)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True, help="certificate, history and log")
    parser.add_argument("--username", default="operator")
    parser.add_argument("--password", default="plant-secret")
    parser.add_argument("--no-anonymous", action="store_true")
    parser.add_argument("--no-history", action="store_true")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)

    server = Server(user_manager=Users(args.username, args.password, not args.no_anonymous))
    if not args.no_history:
        server.iserver.history_manager.set_storage(HistorySQLite(str(args.dir / "history.sqlite3")))
    await server.init()
    endpoint = f"opc.tcp://127.0.0.1:{args.port}/millrace/plant"
    server.set_endpoint(endpoint)
    server.set_server_name("Millrace test plant")
    app_uri = "urn:millrace:test-plant:server"
    await server.set_application_uri(app_uri)

    key, cert = args.dir / "server-key.pem", args.dir / "server-cert.der"
    await setup_self_signed_certificate(
        key,
        cert,
        app_uri,
        "127.0.0.1",
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        {"commonName": "Millrace test plant"},
    )
    await server.load_certificate(str(cert))
    await server.load_private_key(str(key))
    server.set_security_policy(
        [ua.SecurityPolicyType.NoSecurity, ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt]
    )

    idx = await server.register_namespace(NAMESPACE)
    plant = Plant(server, idx, args.dir / "values.jsonl", not args.no_history)
    await plant.build()

    async with server:
        await plant.start()
        print(json.dumps({"endpoint": endpoint, "namespace": NAMESPACE}), flush=True)
        await commands(plant)


if __name__ == "__main__":
    asyncio.run(main())
