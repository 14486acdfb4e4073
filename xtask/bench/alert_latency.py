"""Alert latency of `qadf-stream run`, measured from outside with confluent-kafka (librdkafka).

Usage: alert_latency.py create BROKER TOPIC ALERTS
       alert_latency.py measure BROKER TOPIC ALERTS RATE SECONDS [REFERENCE_WAIT_MS]

`measure` produces single-sample JSON messages to TOPIC at RATE messages/s for SECONDS; every
50 ms one sample is out of range (3000 K) on a fresh layer, so `run`'s range check raises one
alert for it. It reads ALERTS and records produce -> alert received per spike, and reads TOPIC
itself with a second consumer: the broker's own produce -> consume latency for the same messages,
in the same seconds. Prints one JSON object, with how many messages each reader received: a
percentile over only the messages that arrived says nothing about the ones that did not.

The broker's own reader uses `fetch.wait.max.ms = REFERENCE_WAIT_MS` (default 20). Tansu 0.6.0's
memory engine lists a partition's records from the start on every fetch, within the fetch's wait:
with 1 ms a reader stops receiving once the partition holds ~1,300 records (librdkafka and
rskafka alike), so a 1 ms reference would measure only the first second of the run.
"""
import json
import sys
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

FAST = {"fetch.wait.max.ms": 1, "fetch.min.bytes": 1, "enable.auto.commit": False,
        "auto.offset.reset": "earliest"}


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def create(broker, topic, alerts):
    admin = AdminClient({"bootstrap.servers": broker})
    futures = admin.create_topics([NewTopic(t, 1, 1) for t in (topic, alerts)])
    for f in futures.values():
        try:
            f.result(30)
        except Exception as e:  # already there is fine
            if "exist" not in str(e).lower():
                raise


def measure(broker, topic, alerts, rate, seconds, reference_wait_ms=20):
    producer = Producer({"bootstrap.servers": broker, "linger.ms": 0, "acks": "all"})
    alert_reader = Consumer(dict(FAST, **{"bootstrap.servers": broker, "group.id": "lat-a-%d" % time.time_ns()}))
    probe = Consumer(dict(FAST, **{"bootstrap.servers": broker, "group.id": "lat-p-%d" % time.time_ns(),
                                   "fetch.wait.max.ms": int(reference_wait_ms)}))
    alert_reader.subscribe([alerts])
    probe.subscribe([topic])
    # Wait for both assignments before the clock starts.
    deadline = time.time() + 30
    while (not alert_reader.assignment() or not probe.assignment()) and time.time() < deadline:
        alert_reader.poll(0.05)
        probe.poll(0.05)
    t0_ns = 1_800_000_000_000_000_000
    every = max(1, int(rate * 0.05))
    sent_at, spike_at, broker_lat, alert_lat = {}, {}, [], []
    total = int(rate * seconds)
    start = time.time()
    i = 0
    layer = 1

    def drain():
        now = time.time()
        for m in probe.consume(1000, 0):
            if m.error() is None and m.key() is not None:
                seq = int(m.key())
                if seq in sent_at:
                    broker_lat.append((now - sent_at.pop(seq)) * 1e3)
        for m in alert_reader.consume(100, 0):
            if m.error() is None:
                a = json.loads(m.value())
                sent = spike_at.pop(a.get("layer"), None)
                if sent is not None:
                    alert_lat.append((now - sent) * 1e3)

    while i < total:
        due = int((time.time() - start) * rate) + 1
        while i < min(due, total):
            spike = i % every == every - 1
            sample = {"build_id": "latency", "source_id": "s", "layer": layer if spike else 0,
                      "timestamp": (t0_ns + int(i * 1e9 / rate)) / 1e9, "x": 10.0 + (i % 100) * 0.01, "y": 10.0,
                      "z": 0.03, "temperature": 3000.0 if spike else 1900.0}
            producer.produce(topic, key=str(i), value=json.dumps(sample))
            now = time.time()
            sent_at[i] = now
            if spike:
                spike_at[layer] = now
                layer += 1
            i += 1
        producer.poll(0)
        drain()
    produced = time.time() - start
    producer.flush(30)
    end = time.time() + 5
    while (spike_at or sent_at) and time.time() < end:
        drain()
        time.sleep(0.001)
    alert_reader.close()
    probe.close()
    print(json.dumps({
        "rate": rate, "seconds": seconds, "messages": total, "spikes": layer - 1,
        "alerts": len(alert_lat), "alerts_missing": len(spike_at),
        "alert_p50_ms": percentile(alert_lat, 50), "alert_p99_ms": percentile(alert_lat, 99),
        "alert_max_ms": max(alert_lat) if alert_lat else None,
        "broker_received": len(broker_lat), "broker_wait_ms": int(reference_wait_ms),
        "broker_p50_ms": percentile(broker_lat, 50), "broker_p99_ms": percentile(broker_lat, 99),
        "achieved_rate": total / max(1e-9, produced),
    }))


if __name__ == "__main__":
    if sys.argv[1] == "create":
        create(*sys.argv[2:5])
    else:
        measure(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), float(sys.argv[6]), *sys.argv[7:8])
