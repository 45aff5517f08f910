"""A Sparkplug B edge node for the connector's tests, driven line by line over stdin.

Payloads are encoded by the `pysparkplug` package (an implementation independent of
Millrace's), MQTT is spoken by `paho-mqtt` (pysparkplug's own transport). The test decides
what is published and when, including sequence gaps, and reads one JSON event per line on
stdout. Commands (one JSON object per line):

  {"op": "connect", "host", "port", "username"?, "password"?, "group", "node",
   "metrics": [metric], "devices": {"<id>": [metric]}, "bd_seq": n}
  {"op": "data", "device"?: id, "metrics": [metric], "qos": 0|1, "skip_seq"?: true}
  {"op": "ddeath", "device": id}
  {"op": "death"}          publishes the NDEATH and disconnects, as a clean shutdown does
  {"op": "quit"}

A metric is {"name"?, "alias"?, "type": "Double"|"Int32"|"Boolean"|"String"|...,
"value", "timestamp"?}. An NCMD setting `Node Control/Rebirth` is answered by publishing the
births again (seq restarting at 0, same bdSeq) and the event {"event": "rebirth"}; after a
reconnect (a broker restart) the births go out before any data, with {"event": "reborn"}.
"""

import json
import sys
import threading
import time

import paho.mqtt.client as mqtt
from pysparkplug import DataType, DBirth, DData, DDeath, Metric, NBirth, NCmd, NData, NDeath

lock = threading.Lock()
# Held while a message is built and sent, so a rebirth and a data message never interleave
# their sequence numbers.
publishing = threading.RLock()
state = {"seq": -1, "connected": threading.Event(), "rc": None}


def emit(event):
    with lock:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()


def now_ms():
    return int(time.time() * 1000)


def metric(spec, with_name=True):
    return Metric(
        timestamp=spec.get("timestamp", now_ms()),
        name=spec.get("name") if with_name else None,
        datatype=DataType[spec["type"].upper()],
        value=spec.get("value"),
        alias=spec.get("alias"),
    )


def next_seq(skip=False):
    state["seq"] = (state["seq"] + (2 if skip else 1)) % 256
    return state["seq"]


def topic(kind, device=None):
    base = f"spBv1.0/{state['group']}/{kind}/{state['node']}"
    return f"{base}/{device}" if device else base


def publish(topic_name, payload, qos, include_dtypes):
    info = state["client"].publish(topic_name, payload.encode(include_dtypes=include_dtypes), qos=qos)
    try:
        info.wait_for_publish(timeout=10)
    except (RuntimeError, ValueError):
        return False
    return info.is_published()


def births():
    state["seq"] = -1
    metrics = [metric(m) for m in state["metrics"]]
    metrics.append(Metric(timestamp=now_ms(), name="bdSeq", datatype=DataType.INT64,
                          value=state["bd_seq"]))
    publish(topic("NBIRTH"), NBirth(timestamp=now_ms(), seq=next_seq(), metrics=tuple(metrics)),
            0, True)
    for device, specs in state["devices"].items():
        payload = DBirth(timestamp=now_ms(), seq=next_seq(),
                         metrics=tuple(metric(m) for m in specs))
        publish(topic("DBIRTH", device), payload, 0, True)


def on_message(_client, _userdata, message):
    try:
        command = NCmd.decode(message.payload)
    except Exception as err:  # a test may send garbage; say so and go on
        emit({"event": "bad_command", "error": str(err)})
        return
    if any(m.name == "Node Control/Rebirth" and m.value for m in command.metrics):
        # Not on paho's network thread: publishing waits for that thread to send.
        threading.Thread(target=rebirth, daemon=True).start()


def rebirth():
    with publishing:
        births()
        emit({"event": "rebirth", "seq": state["seq"]})


def on_connect(_client, _userdata, _flags, rc):
    state["rc"] = rc
    if rc != 0:
        return
    if state.get("born"):
        # A reconnect (the broker restarted): a Sparkplug node births again before any data.
        threading.Thread(target=reconnected, daemon=True).start()
    else:
        state["connected"].set()


def reconnected():
    with publishing:
        births()
        state["connected"].set()
        emit({"event": "reborn", "seq": state["seq"]})


def on_disconnect(_client, _userdata, _rc):
    state["connected"].clear()


def connect(cmd):
    state.update(group=cmd["group"], node=cmd["node"], metrics=cmd.get("metrics", []),
                 devices=cmd.get("devices", {}), bd_seq=cmd.get("bd_seq", 0))
    client = mqtt.Client(client_id=f"edge-{cmd['node']}-{now_ms()}", clean_session=True)
    if cmd.get("username"):
        client.username_pw_set(cmd["username"], cmd.get("password"))
    death = NDeath(timestamp=now_ms(), bd_seq_metric=Metric(
        timestamp=now_ms(), name="bdSeq", datatype=DataType.INT64, value=state["bd_seq"]))
    client.will_set(topic("NDEATH"), death.encode(include_dtypes=True), qos=1)
    client.on_connect = on_connect
    client.on_message = on_message
    client.on_disconnect = on_disconnect
    state["client"] = client
    state["connected"].clear()
    client.connect(cmd["host"], cmd["port"], keepalive=30)
    client.loop_start()
    if not state["connected"].wait(10):
        emit({"event": "error", "rc": state["rc"]})
        return
    client.subscribe(topic("NCMD"), qos=1)
    births()
    state["born"] = True
    emit({"event": "born", "seq": state["seq"]})


def data(cmd):
    if cmd.get("qos", 0) > 0:
        # While paho reconnects (the broker restarted), a QoS 1 message waits for it, and for
        # the births that follow the reconnect.
        state["connected"].wait(30)
    with publishing:
        publish_data(cmd)


def publish_data(cmd):
    device = cmd.get("device")
    seq = next_seq(skip=cmd.get("skip_seq", False))
    metrics = tuple(metric(m, with_name="alias" not in m) for m in cmd["metrics"])
    payload = (DData if device else NData)(timestamp=now_ms(), seq=seq, metrics=metrics)
    ok = publish(topic("DDATA" if device else "NDATA", device), payload, cmd.get("qos", 0), False)
    emit({"event": "published" if ok else "not_published", "seq": seq})


def main():
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "connect":
            connect(cmd)
        elif op == "data":
            data(cmd)
        elif op == "ddeath":
            payload = DDeath(timestamp=now_ms(), seq=next_seq())
            publish(topic("DDEATH", cmd["device"]), payload, 0, False)
            emit({"event": "published", "seq": state["seq"]})
        elif op == "death":
            death = NDeath(timestamp=now_ms(), bd_seq_metric=Metric(
                timestamp=now_ms(), name="bdSeq", datatype=DataType.INT64,
                value=state["bd_seq"]))
            publish(topic("NDEATH"), death, 1, True)
            state["client"].disconnect()
            state["client"].loop_stop()
            emit({"event": "dead"})
        elif op == "quit":
            break
    emit({"event": "bye"})


if __name__ == "__main__":
    main()
