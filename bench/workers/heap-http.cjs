// The small HTTP server of the v8-heap suite, one cluster worker: GET
// /item/<id> builds (or finds) an item in a 5,000-entry cache and sends it
// as JSON. The load generator asks for random ids: every worker ends up
// holding different items.
//   BENCH_HEAP: JSON { enableMerge }
'use strict';
const http = require('node:http');
const path = require('node:path');

// From the process's start: Node's bootstrap, and in the mode the preload (node-ksm, enableMerge(), the
// reseed), count as plain workers' own require of node-ksm does.
const t0 = 0;
const cpu0 = { user: 0, system: 0 };
const spec = JSON.parse(process.env.BENCH_HEAP ?? '{}');
if (spec.enableMerge) require(path.join(__dirname, '..', '..', 'dist', 'index.js')).enableMerge();
const { workerStats } = require('./heap-stats.cjs');

const cache = new Map();
let served = 0;

/** FNV-1a of the id: how many tags an item has, so items differ in shape as well as content. */
function shape(id) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) hash = Math.imul(hash ^ id.charCodeAt(i), 0x01000193) >>> 0;
  return hash;
}

function item(id) {
  let found = cache.get(id);
  if (found) return found;
  const tags = [];
  const count = 1 + (shape(id) % 16);
  for (let i = 0; i < count; i++) tags.push(`${id.slice(i % id.length)}-${i}`);
  found = { id, created: Date.now(), tags, score: id.length * 31 + tags.length, owner: { name: `user-${id.slice(0, 6)}`, roles: ['reader', 'writer'] } };
  cache.set(id, found);
  if (cache.size > 5000) cache.delete(cache.keys().next().value);
  return found;
}

const server = http.createServer((req, res) => {
  served += 1;
  const id = req.url.startsWith('/item/') ? req.url.slice(6) : 'none';
  const body = JSON.stringify({ item: item(id), cached: cache.size, at: served });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});

const stats = workerStats();
process.on('message', (message) => {
  if (message?.cmd === 'stats-reset') {
    stats.reset();
    served = 0;
    process.send({ cmd: 'stats-reset' });
  } else if (message?.cmd === 'stats') {
    const cpu = stats.read();
    setImmediate(() => process.send({ cmd: 'stats', served, ...cpu, gcPauses: stats.read().gcPauses }));
  }
});
server.listen(0, () => {
  const cpu = process.cpuUsage(cpu0);
  process.send({
    cmd: 'ready',
    pid: process.pid,
    port: server.address().port,
    startupMs: performance.now() - t0,
    startupCpuMs: (cpu.user + cpu.system) / 1000,
    random: Math.random(),
  });
});
