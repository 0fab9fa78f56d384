/**
 * Files the operator hands us (the exporter's web config, its certificates
 * and keys): read here because this layer is the only one that touches the
 * filesystem.
 */
import { promises as fsp } from 'node:fs';

export function readConfigFile(file: string): Promise<Buffer> {
  return fsp.readFile(file);
}
