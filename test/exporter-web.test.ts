/**
 * The exporter facing a network: TLS and basic auth from an exporter-toolkit
 * web config file, a bad config refused with a usage error, and bad
 * requests, concurrent scrapes and slow clients that do not take it down.
 * Everything on loopback, bounded in count and time.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import bcrypt from 'bcryptjs';
import { afterAll, afterEach, beforeAll, describe, expect, it, type TestContext } from 'vitest';

import { makeKsmTree, runCli } from './helpers/cli.js';
import { startExporter } from './helpers/exporter.js';
import { requireTool } from './helpers/tools.js';

let children: ChildProcess[] = [];
let dir: string;
let root: string;
afterEach(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children = [];
});
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-web-'));
  root = makeKsmTree();
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(root, { recursive: true, force: true });
});

async function start(config: string | undefined, extra: string[] = []): Promise<string> {
  const args = config === undefined ? extra : ['--web.config.file', config, ...extra];
  const started = await startExporter(['--root', root], args);
  children.push(started.child);
  return started.url;
}

function writeConfig(name: string, yaml: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, yaml);
  return file;
}

/** A CA and a server certificate for 127.0.0.1 (and a client one), made with openssl. */
function certificates(ctx: TestContext): boolean {
  requireTool(ctx, 'openssl', 'openssl', ['version']);
  if (fs.existsSync(path.join(dir, 'server.crt'))) return true;
  const ossl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=test-ca', '-keyout', 'ca.key', '-out', 'ca.crt');
  for (const who of ['server', 'client']) {
    ossl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${who}`, '-keyout', `${who}.key`, '-out', `${who}.csr`);
    const ext = path.join(dir, `${who}.ext`);
    fs.writeFileSync(ext, who === 'server' ? 'subjectAltName=IP:127.0.0.1\n' : 'subjectAltName=DNS:prometheus.example\n');
    ossl('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', ext, '-out', `${who}.crt`);
  }
  return true;
}

function get(url: string, options: https.RequestOptions = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const request = (url.startsWith('https:') ? https : http).get(url, { ...options, timeout: 10_000 }, (res: http.IncomingMessage) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    request.on('error', reject);
  });
}

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('exporter web config (exporter-toolkit format)', () => {
  it('basic auth: 401 without or with wrong credentials, 200 with a bcrypt-hashed password ($2y$ and $2b$)', async () => {
    const config = writeConfig(
      'auth.yml',
      `basic_auth_users:\n  prometheus: '${bcrypt.hashSync('s3cret', 4).replace(/^\$2b\$/, '$2y$')}'\n  other: '${bcrypt.hashSync('pw', 4)}'\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n`,
    );
    const url = await start(config);
    const none = await get(url);
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Basic realm="node-ksm"');
    expect(none.body).not.toContain('ksm_');
    expect((await get(url, { headers: { authorization: basic('prometheus', 'wrong') } })).status).toBe(401);
    expect((await get(url, { headers: { authorization: basic('nobody', 's3cret') } })).status).toBe(401);
    for (const [user, password] of [['prometheus', 's3cret'], ['other', 'pw'], ['prometheus', 's3cret']] as const) {
      const ok = await get(url, { headers: { authorization: basic(user, password) } });
      expect(ok.status).toBe(200);
      expect(ok.body).toMatch(/^ksm_pages_sharing 9000$/m);
      expect(ok.headers['x-frame-options']).toBe('deny');
    }
  });

  it('TLS from cert_file/key_file relative to the config; mutual TLS with RequireAndVerifyClientCert and client_allowed_sans', async (ctx) => {
    if (!certificates(ctx)) return;
    const ca = fs.readFileSync(path.join(dir, 'ca.crt'));
    const plainTls = writeConfig('tls.yml', 'tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS12\n');
    const url = await start(plainTls);
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const served = await get(url, { ca });
    expect(served.status).toBe(200);
    expect(served.body).toMatch(/^ksm_run 1$/m);
    await expect(get(url)).rejects.toMatchObject({ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });

    const mutual = writeConfig(
      'mtls.yml',
      'tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  client_allowed_sans: [prometheus.example]\n',
    );
    const mtls = await start(mutual);
    const client = { ca, cert: fs.readFileSync(path.join(dir, 'client.crt')), key: fs.readFileSync(path.join(dir, 'client.key')) };
    expect((await get(mtls, client)).status).toBe(200);
    // Without a client certificate the handshake itself is refused.
    await expect(get(mtls, { ca })).rejects.toBeInstanceOf(Error);
    // A verified certificate without an allowed SAN: 403.
    const otherSans = writeConfig('sans.yml', fs.readFileSync(mutual, 'utf8').replace('prometheus.example', 'grafana.example'));
    const sans = await start(otherSans);
    expect((await get(sans, client)).status).toBe(403);
  });

  it('a bad config is a usage error (exit 2) naming the file and the field, before listening', async () => {
    const cases: Array<[string, RegExp]> = [
      ['unknown_top: 1\n', /unknown field unknown_top/],
      ['tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n', /cert_file nope\.crt: ENOENT/],
      ['tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Sometimes\n', /client_auth_type: unknown value "Sometimes"/],
      ['basic_auth_users:\n  alice: plaintext\n', /basic_auth_users\.alice: not a bcrypt hash/],
      ['basic_auth_users: [\n', /not YAML/],
      ['rate_limit:\n  interval: 1s\n  burst: 2\n', /rate_limit is not supported/],
    ];
    for (const [yaml, message] of cases) {
      const file = writeConfig('bad.yml', yaml);
      const result = await runCli(['--root', root, 'exporter', '--port', '0', '--web.config.file', file]);
      expect(result.code, yaml).toBe(2);
      expect(result.stderr, yaml).toMatch(message);
      expect(result.stderr).toContain(file);
    }
  });
});

describe('exporter under load (loopback, bounded)', () => {
  it('bad requests, 100 concurrent scrapes and 200 slow clients: every real scrape is answered', async () => {
    const url = await start(undefined);
    const { port } = new URL(url);
    // Garbage and half-sent requests.
    const raw = (bytes: string): Promise<string> =>
      new Promise((resolve) => {
        const socket = net.connect(Number(port), '127.0.0.1', () => socket.end(bytes));
        let reply = '';
        socket.on('data', (chunk) => (reply += chunk.toString()));
        socket.on('close', () => resolve(reply));
        socket.on('error', () => resolve(reply));
      });
    expect(await raw('GARBAGE \x00\x01\r\n\r\n')).toMatch(/^HTTP\/1\.1 400/);
    expect(await raw(`GET /${'x'.repeat(20_000)} HTTP/1.1\r\nHost: a\r\n${'X-A: b\r\n'.repeat(2000)}\r\n`)).toMatch(/^HTTP\/1\.1 431/);
    expect((await get(url.replace('/metrics', '/metrics?x=%zz'))).status).toBe(200);

    // Slow clients: connected, sending one header byte at a time, never finishing.
    const slow: net.Socket[] = [];
    for (let i = 0; i < 200; i++) {
      const socket = net.connect(Number(port), '127.0.0.1');
      socket.on('error', () => undefined);
      socket.write('GET /metrics HTTP/1.1\r\nHost: a\r\n');
      slow.push(socket);
    }
    try {
      const scrapes = await Promise.all(Array.from({ length: 100 }, () => get(url)));
      expect(scrapes.every((s) => s.status === 200 && /^ksm_pages_sharing 9000$/m.test(s.body))).toBe(true);
    } finally {
      for (const socket of slow) socket.destroy();
    }
    expect((await get(url)).status).toBe(200);
  });
});
