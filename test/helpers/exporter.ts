/** Test helpers for `node-ksm exporter`: start it as a child, scrape it, read samples. */
import type { ChildProcess } from 'node:child_process';
import parsePrometheusTextFormat, { type PrometheusFamily } from 'parse-prometheus-text-format';
import { expect } from 'vitest';

import { spawnCli } from './cli.js';

/** Starts the exporter on a free port and resolves with its URL (from its --json line). */
export async function startExporter(args: string[] = [], exporterArgs: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; url: string }> {
  const child = spawnCli([...args, 'exporter', '--port', '0', '--host', '127.0.0.1', '--json', ...exporterArgs], env);
  let out = '';
  let err = '';
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n')) resolve((JSON.parse(line!) as { url: string }).url);
    });
    child.once('exit', (code) => reject(new Error(`exporter exited (${code}): ${err}`)));
  });
  return { child, url };
}

export async function scrape(url: string): Promise<{ families: Map<string, PrometheusFamily>; contentType: string | null }> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  const families = parsePrometheusTextFormat(await response.text());
  return { families: new Map(families.map((f) => [f.name, f])), contentType: response.headers.get('content-type') };
}

export function sample(families: Map<string, PrometheusFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = families.get(name)?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return found?.value === undefined ? undefined : Number(found.value);
}

