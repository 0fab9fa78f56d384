/**
 * `node-ksm exporter`: /metrics for the whole machine, node_exporter style:
 * the system counters and every process that merges, labelled by pid and
 * comm. One registry per server; figures are read when Prometheus scrapes.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Command } from 'commander';
import type * as PromClient from 'prom-client';

import { KsmMissingDependencyError } from '../errors.js';
import { collectMachineKsmMetrics } from '../metrics/index.js';
import type { ExporterJson } from './json.js';
import { parseInteger, toJson, type GlobalOptions } from './output.js';

export interface ExporterOptions {
  port: number;
  host: string;
  root?: string;
  fairShare?: boolean;
  exact?: boolean;
}

/** Starts the server; resolves once it listens. */
export async function startExporter(options: ExporterOptions): Promise<{ server: http.Server; url: string }> {
  let client: typeof PromClient;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    client = require('prom-client') as typeof PromClient;
  } catch (error) {
    throw new KsmMissingDependencyError('prom-client', 'npm install prom-client (next to node-ksm)', { cause: error });
  }
  const registry = new client.Registry();
  const metricsOptions: Parameters<typeof collectMachineKsmMetrics>[0] = { register: registry };
  if (options.root !== undefined) metricsOptions.root = options.root;
  if (options.fairShare !== undefined) metricsOptions.fairShare = options.fairShare;
  if (options.exact !== undefined) metricsOptions.exact = options.exact;
  collectMachineKsmMetrics(metricsOptions);

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(req.method === 'HEAD' ? undefined : text);
        },
        (error: unknown) => {
          res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
          res.end(`# scrape failed: ${(error as Error).message}\n`);
        },
      );
      return;
    }
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<html><head><title>node-ksm exporter</title></head><body><h1>node-ksm exporter</h1><p><a href="/metrics">Metrics</a></p></body></html>\n');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return { server, url: `http://${host}:${address.port}/metrics` };
}

interface ExporterCliOptions extends GlobalOptions {
  port: string;
  host: string;
  fairShare?: boolean;
  exact?: boolean;
}

export function register(program: Command): void {
  program
    .command('exporter')
    .description('serve /metrics for the whole machine (all processes that merge), for Prometheus')
    .option('-p, --port <port>', 'TCP port (0: any free port)', '9642')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--no-fair-share', 'skip per-process fair share (cheaper scrapes)')
    .option('--exact', 'fair share page by page from pagemap/kpageflags (root)')
    .option('--json', 'print an ExporterJson line with the URL once listening')
    .addHelpText('after', '\nReading other processes needs root. SIGINT / SIGTERM stop the server. prom-client must be installed.')
    .action(async (_options, command: Command) => {
      const o = command.optsWithGlobals<ExporterCliOptions>();
      const options: ExporterOptions = { port: parseInteger(o.port, '--port', 0, 65535), host: o.host };
      if (o.root !== undefined) options.root = o.root;
      if (o.fairShare === false) options.fairShare = false;
      if (o.exact === true) options.exact = true;
      const { server, url } = await startExporter(options);
      if (o.json === true) process.stdout.write(`${toJson({ kind: 'node-ksm/exporter', version: 1, url } satisfies ExporterJson, 0)}\n`);
      else process.stdout.write(`node-ksm exporter: serving ${url}\n`);
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          server.close(() => resolve());
          server.closeAllConnections();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}
