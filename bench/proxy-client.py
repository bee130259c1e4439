# One proxy-benchmark sample: a Python client (requests or httpx) making Mistral-shaped chat calls.
# Imports nothing from this package; the orchestrator (bench/proxy.ts) decides whether it goes
# direct, through `mistral-usage run` (HTTPS_PROXY) or to `mistral-usage proxy` (base URL).
#
#   python3 bench/proxy-client.py LIB MODE URL CALLS WARMUP THREADS
#
# LIB: requests | httpx; MODE: json | sse. With THREADS = 1, CALLS calls one after the other
# (latency); with more, CALLS calls shared by THREADS threads, one keep-alive client each
# (throughput). Prints one JSON line: per-call latencies and first-chunk times (ms), wall time.
import json, sys, threading, time

lib, mode, base, calls, warmup, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
url = base + "/v1/chat/completions"
headers = {"content-type": "application/json", "accept": "application/json", "authorization": "Bearer bench-not-a-key"}
def body(stream):
    return json.dumps({"model": "mistral-small-latest", "messages": [{"role": "system", "content": "You are a concise assistant."}, {"role": "user", "content": "What is the capital of France? Answer in one short sentence."}], "temperature": 0.2, "max_tokens": 64, "stream": stream}).encode()
JSON_BODY, SSE_BODY = body(False), body(True)

if lib == "requests":
    import requests
    def client():
        return requests.Session()
    def call(c):
        t0 = time.perf_counter()
        if mode == "json":
            c.post(url, data=JSON_BODY, headers=headers).json()
            return (time.perf_counter() - t0) * 1000, float("nan")
        first = None
        with c.post(url, data=SSE_BODY, headers=headers, stream=True) as r:
            for chunk in r.iter_content(chunk_size=None):
                if first is None:
                    first = time.perf_counter()
        return (time.perf_counter() - t0) * 1000, (first - t0) * 1000
else:
    import httpx
    def client():
        return httpx.Client(timeout=60)
    def call(c):
        t0 = time.perf_counter()
        if mode == "json":
            c.post(url, content=JSON_BODY, headers=headers).json()
            return (time.perf_counter() - t0) * 1000, float("nan")
        first = None
        with c.stream("POST", url, content=SSE_BODY, headers=headers) as r:
            for chunk in r.iter_raw():
                if first is None:
                    first = time.perf_counter()
        return (time.perf_counter() - t0) * 1000, (first - t0) * 1000

results = []
lock = threading.Lock()
def worker(n):
    c = client()
    for _ in range(warmup):
        call(c)
    barrier.wait()
    local = [call(c) for _ in range(n)]
    with lock:
        results.extend(local)

barrier = threading.Barrier(threads + 1)
per = [calls // threads + (1 if i < calls % threads else 0) for i in range(threads)]
ts = [threading.Thread(target=worker, args=(n,)) for n in per]
for t in ts:
    t.start()
barrier.wait()
start = time.perf_counter()
for t in ts:
    t.join()
wall = (time.perf_counter() - start) * 1000
print(json.dumps({"latencies": [r[0] for r in results], "first": [r[1] for r in results if r[1] == r[1]], "wallMs": wall, "calls": len(results)}))
