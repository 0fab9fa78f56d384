/** Where the kernel's files are, under a root that tests can point at fixtures. */
import * as path from 'node:path';

export function procPath(root: string, pid: number | 'self', file?: string): string {
  return file === undefined
    ? path.join(root, 'proc', String(pid))
    : path.join(root, 'proc', String(pid), file);
}

export function ksmSysfsDir(root: string): string {
  return path.join(root, 'sys', 'kernel', 'mm', 'ksm');
}

export function thpSysfsDir(root: string): string {
  return path.join(root, 'sys', 'kernel', 'mm', 'transparent_hugepage');
}
