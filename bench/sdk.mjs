// Browser SDK cost: gzipped bytes a page downloads, and the time from the SDK script starting
// to load to the first identify request leaving the page, in headless Chromium (median and min
// of RUNS fresh page loads). The identify endpoint is a local stub answering 202, so only the
// SDK is measured. Run `npm run build` first.  Usage: node bench/sdk.mjs [RUNS]
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';

const runs = Number(process.argv[2] ?? 20);
const dist = new URL('../dist/', import.meta.url);
const files = {
  '/dropfix.global.js': ['text/javascript', readFileSync(new URL('dropfix.global.js', dist))],
  '/dropfix_wasm_bg.wasm': ['application/wasm', readFileSync(new URL('dropfix_wasm_bg.wasm', dist))],
  '/': [
    'text/html',
    `<!doctype html><script>${readFileSync(new URL('../js/loader.js', import.meta.url))}</script>
     <script>DropFix.init({ appId: 'app_bench' }); DropFix.identify('42', { plan: 'pro', mrr: 49 });</script>
     <script async src="/dropfix.global.js"></script>`,
  ],
};
const server = createServer((req, res) => {
  if (req.url.startsWith('/v1/identify')) {
    res.writeHead(202, { 'Content-Type': 'application/json' });
    return res.end('{"verified":false,"user_id":"42","method":null}');
  }
  const [type, body] = files[req.url] ?? ['text/plain', ''];
  res.writeHead(body ? 200 : 404, { 'Content-Type': type, 'Cache-Control': 'no-store' });
  res.end(body);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const origin = `http://127.0.0.1:${server.address().port}`;

const gz = (b) => gzipSync(b, { level: 9 }).length;
const wasm = gz(files['/dropfix_wasm_bg.wasm'][1]);
const js = gz(files['/dropfix.global.js'][1]);
console.log(`downloaded (gzip -9): wasm ${wasm} B + JS ${js} B = ${wasm + js} B (${((wasm + js) / 1000).toFixed(1)} KB)`);

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const times = [];
for (let i = 0; i < runs; i++) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => performance.getEntriesByType('resource').some((e) => e.name.includes('/v1/identify')));
  const ms = await page.evaluate(() => {
    const entries = performance.getEntriesByType('resource');
    const script = entries.find((e) => e.name.endsWith('/dropfix.global.js'));
    const identify = entries.find((e) => e.name.includes('/v1/identify'));
    return identify.startTime - script.startTime;
  });
  times.push(ms);
  await context.close();
}
await browser.close();
server.close();
times.sort((a, b) => a - b);
console.log(`script load start -> first identify request: median ${times[Math.floor(times.length / 2)].toFixed(1)} ms, min ${times[0].toFixed(1)} ms over ${runs} page loads`);
