"""Posts wrong console logins as fast as THREADS keep-alive connections allow, for SECONDS, each
with a new email (LEN bytes of padding), optionally each from a new X-Forwarded-For client.
Prints the answers by status. Usage: login_flood.py URL SECONDS THREADS LEN XFF(0|1)."""
import http.client, sys, threading, time, urllib.parse
from collections import Counter

url, secs, threads, pad_len, xff = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
u = urllib.parse.urlparse(url)
pad = "a" * pad_len
counts, lock = Counter(), threading.Lock()
deadline = time.monotonic() + secs

def run(tid):
    c, n, local = None, 0, Counter()
    while time.monotonic() < deadline:
        n += 1
        body = f"email={pad}{tid}x{n}%40example.com&password=x"
        headers = {"Origin": url, "Content-Type": "application/x-www-form-urlencoded"}
        if xff:
            k = n * threads + tid
            headers["X-Forwarded-For"] = f"10.{k // 65536 % 256}.{k // 256 % 256}.{k % 256}"
        try:
            c = c or http.client.HTTPConnection(u.hostname, u.port, timeout=30)
            c.request("POST", "/console/login", body, headers)
            r = c.getresponse(); r.read(); local[r.status] += 1
        except Exception as e:
            local[type(e).__name__] += 1; c = None
    with lock:
        counts.update(local)

ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
print(" ".join(f"{k}:{v}" for k, v in sorted(counts.items(), key=str)))
