"""Ceilings for `cargo xtask bench run`, measured by independent clients in the same run.

  mongo URI SOURCE_DB TARGET_DB   pymongo inserts the bucket documents `run` wrote (read from
                                  SOURCE_DB.stream_data) into TARGET_DB, 50 per insert_many, as
                                  `run`'s writer groups them; prints "<samples> <seconds>".
  fetch BROKER TOPIC MESSAGES     confluent-kafka reads the topic from its start until MESSAGES
                                  messages arrived; prints "<messages> <seconds>".
"""
import sys
import time


def mongo(uri, source, target):
    from pymongo import MongoClient
    client = MongoClient(uri)
    docs = list(client[source]["stream_data"].find())
    samples = sum(d["count"] for d in docs)
    coll = client[target]["stream_data"]
    t = time.perf_counter()
    for k in range(0, len(docs), 50):
        coll.insert_many(docs[k:k + 50], ordered=False)
    seconds = time.perf_counter() - t
    client.drop_database(target)
    print(samples, seconds)


def fetch(broker, topic, messages):
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": broker, "group.id": "ceiling-%d" % time.time_ns(),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 20})
    c.subscribe([topic])
    got, start, idle = 0, None, time.monotonic()
    while got < messages and time.monotonic() - idle < 30:
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        if start is None:
            start = time.perf_counter()
        got += 1
        idle = time.monotonic()
    seconds = time.perf_counter() - (start or time.perf_counter())
    c.close()
    print(got, seconds)


if __name__ == "__main__":
    {"mongo": mongo, "fetch": lambda b, t, n: fetch(b, t, int(n))}[sys.argv[1]](*sys.argv[2:])
