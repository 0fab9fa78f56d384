/**
 * `node-ksm exporter`: /metrics for the whole machine, node_exporter style:
 * the system counters, ksmd's CPU, and what every merging process saves,
 * summed per cgroup (unit, pod, container); per process only with
 * --per-process. One registry per server; figures are read when Prometheus
 * scrapes. Loopback unless told otherwise; TLS and basic auth from an
 * exporter-toolkit web config file.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Command } from 'commander';

import { collectMachineKsmMetrics, type MachineMetricsOptions } from '../metrics/machine.js';
import { ownPromClient } from '../metrics/prom-client.js';
import type { ExporterJson } from './json.js';
import { parseInteger, toJson, type GlobalOptions } from './output.js';
import { basicAuth, clientAllowed, loadWebConfig, type WebConfig } from './web-config.js';

export interface ExporterOptions {
  port: number;
  host: string;
  root?: string;
  fairShare?: boolean;
  exact?: boolean;
  perProcess?: boolean;
  maxGroups?: number;
  /** An exporter-toolkit web config file (TLS, basic auth, headers). */
  webConfigFile?: string;
}

export interface Exporter {
  server: http.Server;
  url: string;
  /** Reads the web config file again (SIGHUP): new certificates, users, headers. */
  reload(): Promise<void>;
}

const PAGE = '<html><head><title>node-ksm exporter</title></head><body><h1>node-ksm exporter</h1><p><a href="/metrics">Metrics</a></p></body></html>\n';

interface Served {
  config: WebConfig | undefined;
  authorized: (header: string | undefined) => Promise<boolean>;
}

function handler(registry: { metrics(): Promise<string>; contentType: string }, served: () => Served): http.RequestListener {
  return (req, res) => {
    const { config, authorized } = served();
    for (const [name, value] of Object.entries(config?.headers ?? {})) res.setHeader(name, value);
    if (config !== undefined && !clientAllowed(config, req.socket as TLSSocket)) {
      res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8' }).end('client certificate not allowed\n');
      return;
    }
    void authorized(req.headers.authorization).then((ok) => {
      if (!ok) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="node-ksm"', 'content-type': 'text/plain; charset=utf-8' }).end('Unauthorized\n');
        return;
      }
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
            res.end(`# scrape failed: ${JSON.stringify((error as Error).message)}\n`);
          },
        );
        return;
      }
      if (path === '/') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
        return;
      }
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
    });
  };
}

async function load(file: string | undefined): Promise<Served> {
  if (file === undefined) return { config: undefined, authorized: () => Promise.resolve(true) };
  const config = await loadWebConfig(file);
  return { config, authorized: basicAuth(config) };
}

/** Starts the server; resolves once it listens. */
export async function startExporter(options: ExporterOptions): Promise<Exporter> {
  const client = ownPromClient();
  const registry = new client.Registry();
  const metricsOptions: MachineMetricsOptions = { register: registry };
  if (options.root !== undefined) metricsOptions.root = options.root;
  if (options.fairShare !== undefined) metricsOptions.fairShare = options.fairShare;
  if (options.exact !== undefined) metricsOptions.exact = options.exact;
  if (options.perProcess !== undefined) metricsOptions.perProcess = options.perProcess;
  if (options.maxGroups !== undefined) metricsOptions.maxGroups = options.maxGroups;
  collectMachineKsmMetrics(metricsOptions);

  let served = await load(options.webConfigFile);
  const listener = handler(registry, () => served);
  const tls = served.config?.tls;
  const server = tls === undefined ? http.createServer(listener) : https.createServer(tls, listener);
  // Slow or idle clients are dropped instead of holding sockets: a scrape is one short request.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 100;
  server.maxConnections = 512;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    server,
    url: `${tls === undefined ? 'http' : 'https'}://${host}:${address.port}/metrics`,
    async reload() {
      const next = await load(options.webConfigFile);
      if ((next.config?.tls === undefined) !== (tls === undefined)) throw new Error('TLS cannot be switched on or off by a reload: restart the exporter');
      if (next.config?.tls !== undefined && server instanceof https.Server) server.setSecureContext(next.config.tls);
      served = next;
    },
  };
}

interface ExporterCliOptions extends GlobalOptions {
  port: string;
  host: string;
  fairShare?: boolean;
  exact?: boolean;
  perProcess?: boolean;
  maxGroups: string;
  'web.config.file'?: string;
}

export function register(program: Command): void {
  program
    .command('exporter')
    .description('serve /metrics for the whole machine: KSM counters and the saving per cgroup, unit, pod and container')
    .option('-p, --port <port>', 'TCP port (0: any free port)', '9642')
    .option('--host <address>', 'address to listen on (0.0.0.0 or :: for every interface: protect it with --web.config.file)', '127.0.0.1')
    .option('--web.config.file <path>', 'TLS and basic auth, in the web config format of Prometheus exporter-toolkit')
    .option('--per-process', 'also export every merging process (pid, comm labels: one series per process)')
    .option('--max-groups <n>', 'cgroups exported as their own series; the rest are summed into cgroup="other"', '500')
    .option('--no-fair-share', 'skip the fair share (no smaps reads; ksm_stat figures only)')
    .option('--exact', 'fair share page by page from pagemap/kpageflags (root)')
    .option('--json', 'print an ExporterJson line with the URL once listening')
    .addHelpText(
      'after',
      `
It serves what root can read: every merging process's cgroup path, unit, pod uid
and container id (and with --per-process its pid and command name). Reading other
processes needs root (or CAP_SYS_PTRACE; --exact also CAP_SYS_ADMIN).
SIGHUP reloads the web config file; SIGINT / SIGTERM stop the server.`,
    )
    .action(async (_options, command: Command) => {
      const o = command.optsWithGlobals<ExporterCliOptions>();
      const options: ExporterOptions = {
        port: parseInteger(o.port, '--port', 0, 65535),
        host: o.host,
        maxGroups: parseInteger(o.maxGroups, '--max-groups', 0, 100_000),
      };
      if (o.root !== undefined) options.root = o.root;
      if (o.fairShare === false) options.fairShare = false;
      if (o.exact === true) options.exact = true;
      if (o.perProcess === true) options.perProcess = true;
      if (o['web.config.file'] !== undefined) options.webConfigFile = o['web.config.file'];
      const exporter = await startExporter(options);
      const { server, url } = exporter;
      if (o.json === true) process.stdout.write(`${toJson({ kind: 'node-ksm/exporter', version: 1, url } satisfies ExporterJson, 0)}\n`);
      else process.stdout.write(`node-ksm exporter: serving ${url}\n`);
      const onHup = (): void => {
        exporter.reload().then(
          () => process.stderr.write('node-ksm exporter: web config reloaded\n'),
          (error: unknown) => process.stderr.write(`node-ksm exporter: reload failed, keeping the old config: ${(error as Error).message}\n`),
        );
      };
      process.on('SIGHUP', onHup);
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          process.off('SIGHUP', onHup);
          server.close(() => resolve());
          server.closeAllConnections();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}
