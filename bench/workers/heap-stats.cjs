// What a v8-heap worker reports about itself: GC pauses (perf_hooks `gc`
// entries: main-thread pause per collection), CPU time, V8's spaces.
'use strict';
const { PerformanceObserver } = require('node:perf_hooks');
const v8 = require('node:v8');

function workerStats() {
  let pauses = [];
  let cpu = process.cpuUsage();
  let since = performance.now();
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) pauses.push(entry.duration);
  });
  observer.observe({ entryTypes: ['gc'] });
  return {
    reset() {
      pauses = [];
      cpu = process.cpuUsage();
      since = performance.now();
    },
    read() {
      const used = process.cpuUsage(cpu);
      return {
        pid: process.pid,
        wallMs: performance.now() - since,
        cpuMs: (used.user + used.system) / 1000,
        gcPauses: pauses.slice(),
        spaces: Object.fromEntries(
          v8.getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size, physical: s.physical_space_size }]),
        ),
      };
    },
  };
}

module.exports = { workerStats };
