// The load generator of the v8-heap suite's HTTP groups, one process per
// group (groups run side by side, each against its own generator):
// autocannon on loopback, ids replaced per request. argv[2]: JSON
// { url, durationS, connections }. Prints autocannon's result as JSON.
'use strict';
const autocannon = require('autocannon');

const { url, durationS, connections } = JSON.parse(process.argv[2]);
autocannon({ url, connections, duration: durationS, idReplacement: true }).then((result) => {
  process.stdout.write(`${JSON.stringify({
    requestsPerSecond: result.requests.average,
    total: result.requests.total,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors,
    non2xx: result.non2xx,
  })}\n`);
});
