/**
 * The exporter's web configuration: TLS and basic auth in the file format of
 * Prometheus' exporter-toolkit (`--web.config.file`), as node_exporter and
 * Prometheus itself read it, so an operator's existing file works here.
 * Parsed with the `yaml` library; unknown keys are errors, as the toolkit's
 * strict parse makes them. Relative file names are relative to the config
 * file's directory. Passwords are bcrypt hashes.
 */
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import type * as tls from 'node:tls';

import bcrypt from 'bcryptjs';
import { parse as parseYaml } from 'yaml';

import { readConfigFile } from '../kernel/config-files.js';
import { UsageError } from './output.js';

export type ClientAuthType = 'NoClientCert' | 'RequestClientCert' | 'RequireAnyClientCert' | 'VerifyClientCertIfGiven' | 'RequireAndVerifyClientCert';
const CLIENT_AUTH_TYPES: readonly ClientAuthType[] = ['NoClientCert', 'RequestClientCert', 'RequireAnyClientCert', 'VerifyClientCertIfGiven', 'RequireAndVerifyClientCert'];

const TLS_VERSIONS: Record<string, tls.SecureVersion> = { TLS10: 'TLSv1', TLS11: 'TLSv1.1', TLS12: 'TLSv1.2', TLS13: 'TLSv1.3' };

/** Go's names (crypto/tls CipherSuites()) for the TLS 1.2 suites, and OpenSSL's. */
const CIPHER_SUITES: Record<string, string> = {
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
};
const CURVES: Record<string, string> = { CurveP256: 'P-256', CurveP384: 'P-384', CurveP521: 'P-521', X25519: 'X25519' };

const TLS_KEYS = [
  'cert', 'key', 'client_ca', 'cert_file', 'key_file', 'client_auth_type', 'client_ca_file', 'client_allowed_sans',
  'min_version', 'max_version', 'cipher_suites', 'prefer_server_cipher_suites', 'curve_preferences',
];
const HEADER_NAMES = ['Content-Security-Policy', 'X-Frame-Options', 'X-Content-Type-Options', 'X-XSS-Protection', 'Strict-Transport-Security'];

export interface WebConfig {
  /** The file it came from. */
  file: string;
  /** TLS server options for node:https, or undefined for plain HTTP. */
  tls: (tls.SecureContextOptions & tls.TlsOptions) | undefined;
  clientAuthType: ClientAuthType;
  /** A client certificate must carry one of these SANs (exact match). */
  clientAllowedSans: string[];
  /** Response headers to add. */
  headers: Record<string, string>;
  /** user -> bcrypt hash; empty: no authentication. */
  users: Map<string, string>;
}

function fail(file: string, message: string): never {
  throw new UsageError(`--web.config.file ${file}: ${message}`);
}

function object(file: string, where: string, value: unknown): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) fail(file, `${where} must be a mapping`);
  return value as Record<string, unknown>;
}

function onlyKeys(file: string, where: string, value: Record<string, unknown>, known: readonly string[]): void {
  for (const key of Object.keys(value)) if (!known.includes(key)) fail(file, `unknown field ${where}${key}`);
}

function text(file: string, where: string, value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') fail(file, `${where} must be a string`);
  return value;
}

function list(file: string, where: string, value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) fail(file, `${where} must be a list of strings`);
  return value as string[];
}

function mapped(file: string, where: string, values: string[], table: Record<string, string>): string[] {
  return values.map((v) => table[v] ?? fail(file, `${where}: unknown value ${JSON.stringify(v)} (known: ${Object.keys(table).join(', ')})`));
}

/** PEM given inline or as a file relative to the config's directory; both is an error. */
async function pem(file: string, inline: string | undefined, name: string | undefined, what: string): Promise<Buffer | undefined> {
  if (inline !== undefined && name !== undefined) fail(file, `give ${what} or ${what}_file, not both`);
  if (inline !== undefined) return Buffer.from(inline);
  if (name === undefined) return undefined;
  try {
    return await readConfigFile(path.resolve(path.dirname(file), name));
  } catch (error) {
    fail(file, `${what}_file ${name}: ${(error as Error).message}`);
  }
}

async function tlsOptions(file: string, raw: Record<string, unknown>): Promise<Pick<WebConfig, 'tls' | 'clientAuthType' | 'clientAllowedSans'>> {
  onlyKeys(file, 'tls_server_config.', raw, TLS_KEYS);
  const where = (key: string): string => `tls_server_config.${key}`;
  const auth = (text(file, where('client_auth_type'), raw.client_auth_type) ?? 'NoClientCert') as ClientAuthType;
  if (!CLIENT_AUTH_TYPES.includes(auth)) fail(file, `${where('client_auth_type')}: unknown value ${JSON.stringify(auth)} (known: ${CLIENT_AUTH_TYPES.join(', ')})`);
  const cert = await pem(file, text(file, where('cert'), raw.cert), text(file, where('cert_file'), raw.cert_file), 'cert');
  const key = await pem(file, text(file, where('key'), raw.key), text(file, where('key_file'), raw.key_file), 'key');
  const ca = await pem(file, text(file, where('client_ca'), raw.client_ca), text(file, where('client_ca_file'), raw.client_ca_file), 'client_ca');
  const sans = list(file, where('client_allowed_sans'), raw.client_allowed_sans);
  if (Object.keys(raw).length === 0) return { tls: undefined, clientAuthType: 'NoClientCert', clientAllowedSans: [] };
  if (cert === undefined || key === undefined) fail(file, 'tls_server_config needs a certificate and a key (cert_file and key_file)');
  if (auth === 'RequireAndVerifyClientCert' && ca === undefined) fail(file, 'client_auth_type RequireAndVerifyClientCert needs client_ca_file');
  if (sans.length > 0 && auth !== 'RequireAnyClientCert' && auth !== 'RequireAndVerifyClientCert') {
    fail(file, 'client_allowed_sans needs client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert');
  }
  const version = (name: string, fallback: string): tls.SecureVersion => {
    const v = text(file, where(name), raw[name]) ?? fallback;
    return TLS_VERSIONS[v] ?? fail(file, `${where(name)}: unknown value ${JSON.stringify(v)} (known: ${Object.keys(TLS_VERSIONS).join(', ')})`);
  };
  const options: tls.SecureContextOptions & tls.TlsOptions = {
    cert,
    key,
    minVersion: version('min_version', 'TLS12'),
    maxVersion: version('max_version', 'TLS13'),
    requestCert: auth !== 'NoClientCert',
    // Verification is ours for the "if given" and "any" modes (see clientAllowed).
    rejectUnauthorized: auth === 'RequireAndVerifyClientCert',
  };
  if (ca !== undefined) options.ca = ca;
  const ciphers = mapped(file, where('cipher_suites'), list(file, where('cipher_suites'), raw.cipher_suites), CIPHER_SUITES);
  if (ciphers.length > 0) options.ciphers = ciphers.join(':');
  const curves = mapped(file, where('curve_preferences'), list(file, where('curve_preferences'), raw.curve_preferences), CURVES);
  if (curves.length > 0) options.ecdhCurve = curves.join(':');
  const prefer = raw.prefer_server_cipher_suites ?? true;
  if (typeof prefer !== 'boolean') fail(file, `${where('prefer_server_cipher_suites')} must be true or false`);
  options.honorCipherOrder = prefer;
  return { tls: options, clientAuthType: auth, clientAllowedSans: sans };
}

/** Reads and checks a web config file. Throws a UsageError (exit 2) naming the file and the field. */
export async function loadWebConfig(file: string): Promise<WebConfig> {
  let source: string;
  try {
    source = (await readConfigFile(file)).toString('utf8');
  } catch (error) {
    fail(file, (error as Error).message);
  }
  let doc: unknown;
  try {
    doc = parseYaml(source);
  } catch (error) {
    fail(file, `not YAML: ${(error as Error).message}`);
  }
  const top = object(file, 'the file', doc);
  onlyKeys(file, '', top, ['tls_server_config', 'http_server_config', 'basic_auth_users', 'rate_limit']);
  if (top.rate_limit !== undefined && top.rate_limit !== null) fail(file, 'rate_limit is not supported by this exporter (put a proxy in front)');
  const http = object(file, 'http_server_config', top.http_server_config);
  onlyKeys(file, 'http_server_config.', http, ['http2', 'headers']);
  if (http.http2 !== undefined && typeof http.http2 !== 'boolean') fail(file, 'http_server_config.http2 must be true or false');
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(object(file, 'http_server_config.headers', http.headers))) {
    if (!HEADER_NAMES.includes(name)) fail(file, `http_server_config.headers: ${name} is not one of ${HEADER_NAMES.join(', ')}`);
    const v = text(file, `http_server_config.headers.${name}`, value);
    if (v !== undefined && v !== '') headers[name] = v;
  }
  const users = new Map<string, string>();
  for (const [user, hash] of Object.entries(object(file, 'basic_auth_users', top.basic_auth_users))) {
    if (typeof hash !== 'string' || !/^\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) fail(file, `basic_auth_users.${user}: not a bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')`);
    users.set(user, hash);
  }
  return { file, headers, users, ...(await tlsOptions(file, object(file, 'tls_server_config', top.tls_server_config))) };
}

/** A peer certificate's SANs, as node prints them ("DNS:a, IP Address:1.2.3.4"), without their type. */
function sansOf(subjectaltname: string | undefined): string[] {
  return (subjectaltname ?? '').split(', ').filter(Boolean).map((entry) => entry.slice(entry.indexOf(':') + 1));
}

/** Whether a TLS client passes the client_auth_type and client_allowed_sans of the config. */
export function clientAllowed(config: WebConfig, socket: tls.TLSSocket | undefined): boolean {
  if (config.tls === undefined || socket === undefined) return true;
  const cert = socket.getPeerCertificate();
  const given = cert !== null && Object.keys(cert).length > 0;
  switch (config.clientAuthType) {
    case 'NoClientCert':
    case 'RequestClientCert':
      return true;
    case 'RequireAnyClientCert':
      if (!given) return false;
      break;
    case 'VerifyClientCertIfGiven':
      if (given && !socket.authorized) return false;
      break;
    case 'RequireAndVerifyClientCert':
      if (!given || !socket.authorized) return false;
      break;
  }
  if (config.clientAllowedSans.length === 0) return true;
  return sansOf(cert.subjectaltname).some((san) => config.clientAllowedSans.includes(san));
}

/**
 * Basic auth against the config's bcrypt hashes. A bcrypt check costs tens
 * of milliseconds, so a success is remembered (keyed by a hash of user, stored
 * hash and password), as exporter-toolkit does; an unknown user is checked
 * against a dummy hash so the answer takes as long as for a known one.
 */
export function basicAuth(config: WebConfig): (header: string | undefined) => Promise<boolean> {
  const good = new Set<string>();
  if (config.users.size === 0) return () => Promise.resolve(true);
  const dummy = bcrypt.hashSync('node-ksm: no such user', 10);
  return async (header) => {
    const match = /^Basic ([A-Za-z0-9+/=]+)$/.exec(header ?? '');
    if (match === null) return false;
    const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return false;
    const user = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    const hash = config.users.get(user);
    const key = createHash('sha256').update(`${user}\0${hash ?? ''}\0${password}`).digest('hex');
    if (hash !== undefined && good.has(key)) return true;
    const ok = await bcrypt.compare(password, hash ?? dummy);
    if (ok && hash !== undefined) good.add(key);
    return ok && hash !== undefined;
  };
}
