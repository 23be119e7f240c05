// Connection flood: CONNECTIONS sockets, spread over SOURCES loopback source addresses
// (127.0.0.1, 127.0.0.2, ...), each sending HEADER_KB of a request header that never ends.
// While they hold, prints the server's resident memory and how long a normal GET /healthz from
// another address (127.0.0.250) takes. Driven by tests/reliability/conn-flood.sh.
//
// node conn-flood.mjs HOST:PORT SERVER_PID [CONNECTIONS=2000] [HEADER_KB=400] [SOURCES=8]

import net from "node:net";
import { readFileSync } from "node:fs";

const [hostPort, pidArg, connArg = "2000", kbArg = "400", srcArg = "8"] = process.argv.slice(2);
const [host, port] = [hostPort.split(":")[0], Number(hostPort.split(":")[1])];
const pid = Number(pidArg);
const connections = Number(connArg);
const headerBytes = Number(kbArg) * 1024;
const sources = Number(srcArg);

/** VmRSS and VmHWM (peak) of the server, in MB. */
function memory() {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (name) => Number(status.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"))[1]);
  return { rss: Math.round(kb("VmRSS") / 1024), peak: Math.round(kb("VmHWM") / 1024) };
}

function healthz() {
  return new Promise((resolve) => {
    const started = performance.now();
    const s = net.connect({ host, port, localAddress: "127.0.0.250" });
    let data = "";
    s.setTimeout(30_000, () => s.destroy());
    s.on("connect", () =>
      s.write("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    s.on("data", (d) => (data += d));
    s.on("error", () => {});
    s.on("close", () =>
      resolve({ ms: Math.round(performance.now() - started), status: data.split(" ")[1] ?? "none" }),
    );
  });
}

const before = memory();
const filler = Buffer.alloc(headerBytes, "a");
let open = 0;
let closedEarly = 0;
let answered431 = 0;
const sockets = [];
await Promise.all(
  Array.from({ length: connections }, (_, i) =>
    new Promise((resolve) => {
      const s = net.connect({ host, port, localAddress: `127.0.0.${(i % sources) + 1}` });
      sockets.push(s);
      let done = false;
      const finish = () => {
        if (!done) {
          done = true;
          resolve();
        }
      };
      s.on("connect", () => {
        open++;
        s.write("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: ");
        // Resolves once the whole filler is in the kernel's hands (or the server cut us off).
        s.write(filler, () => finish());
      });
      s.on("data", (d) => {
        if (d.toString().startsWith("HTTP/1.1 431")) answered431++;
      });
      s.on("error", () => {});
      s.on("close", () => {
        closedEarly++;
        finish();
      });
      s.setTimeout(60_000, () => finish());
    }),
  ),
);
// Let the server read what the kernel holds for it.
await new Promise((r) => setTimeout(r, 3000));
const during = memory();
const probe = await healthz();
console.log(
  JSON.stringify({
    connections,
    header_kb: headerBytes / 1024,
    sources,
    connected: open,
    closed_by_server: closedEarly,
    answered_431: answered431,
    rss_mb_before: before.rss,
    rss_mb_during: during.rss,
    peak_rss_mb: during.peak,
    healthz_ms_during: probe.ms,
    healthz_status_during: probe.status,
  }),
);
for (const s of sockets) s.destroy();
