/**
 * Labels published for other processes: `node-ksm regions <pid>`, the
 * exporter and doctor run in processes of their own, and labels live in
 * this one. While publishing, the live labels are written to a small file
 * (lib/kernel/label-file.ts) shortly after they change and removed at exit.
 */
import * as path from 'node:path';

import { exists } from '../kernel/files.js';
import { pruneLabelFiles, readLabelFile, removeLabelFile, writeLabelFile, type PublishedLabel } from '../kernel/label-file.js';
import type { ProcessTarget } from '../kernel/target.js';
import { checkBoolean } from '../validate.js';
import { liveLabels, setLabelChangeHook, type LabelledRange } from './labels.js';

/** How often the labels are compared with what was written (GC drops labels without a call). */
const CHECK_MS = 2000;

interface Publisher {
  timer: NodeJS.Timeout;
  file: string | undefined;
  written: string;
  scheduled: boolean;
}

let publisher: Publisher | undefined;

function flush(state: Publisher): void {
  const current = liveLabels();
  const text = current.map((l) => `${l.start}-${l.end}:${l.label}`).join('\n');
  state.scheduled = false;
  // Unchanged and still there (a file removed meanwhile, by hand or by a prune racing a pid's reuse, is written again).
  if (text === state.written && state.file !== undefined && exists(state.file)) return;
  state.file = writeLabelFile(current, state.file);
  if (state.file !== undefined) state.written = text;
}

function onExit(): void {
  if (publisher?.file !== undefined) removeLabelFile(publisher.file);
}

/**
 * Publishes this process's labels so that reports made by other processes
 * (the CLI, the exporter) name its memory too; `false` stops and removes the
 * file. node-ksm/register turns it on unless NODE_KSM_LABELS=off.
 *
 * @returns the file the labels are written to, undefined when not publishing
 *   or when no directory was writable.
 */
export function publishLabels(on?: boolean): string | undefined {
  if ((checkBoolean('on', on) ?? true) === false) {
    if (publisher !== undefined) {
      clearInterval(publisher.timer);
      setLabelChangeHook(undefined);
      onExit();
      process.off('exit', onExit);
      publisher = undefined;
    }
    return undefined;
  }
  if (publisher === undefined) {
    const state: Publisher = {
      timer: setInterval(() => flush(state), CHECK_MS),
      file: undefined,
      written: '',
      scheduled: false,
    };
    state.timer.unref();
    publisher = state;
    process.on('exit', onExit);
    // A label added is written on the next turn of the event loop, once however many were added.
    setLabelChangeHook(() => {
      if (state.scheduled) return;
      state.scheduled = true;
      setImmediate(() => flush(state)).unref();
    });
  }
  const first = publisher.file === undefined;
  flush(publisher);
  const written = publisher.file;
  // Once, off the start-up path: what publishers killed without 'exit' left beside our file.
  if (first && written !== undefined) setImmediate(() => pruneLabelFiles(path.dirname(written))).unref();
  return written;
}

/** Labels of a target: this process's own, another's where it published them. */
export function labelsOf(target: ProcessTarget): LabelledRange[] | PublishedLabel[] {
  if (target.self) return liveLabels();
  return readLabelFile(target.root, target.pid, target.euid);
}
