/**
 * Label files the run's children leave. A child that publishes its labels
 * (node-ksm/register, publishLabels()) removes its file at exit, but the
 * tests end many with SIGKILL or SIGTERM, where 'exit' never runs: at the
 * run's end the label directories are cleared of files no live process
 * stands behind (lib/kernel/label-file.ts pruneLabelFiles(), the prune a
 * publisher makes at its start), and a label directory left empty is
 * removed with its parent where that is empty too (tests write into the
 * temp dir's one, which no publisher running as root makes), so a run
 * leaves none of its own. rmdir removes only empty directories: a file a
 * live publisher writes meanwhile keeps its directory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { labelDirs, pruneLabelFiles } from '../../lib/kernel/label-file.js';

function removeIfEmpty(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch {
    // Not empty, or not there.
  }
}

export default function setup(): () => void {
  return () => {
    const uid = typeof process.geteuid === 'function' ? process.geteuid() : 0;
    for (const dir of labelDirs(uid)) {
      pruneLabelFiles(dir);
      removeIfEmpty(dir);
      // Its parent (node-ksm, node-ksm-<uid>) too: a test that made both may have removed the directory itself already.
      removeIfEmpty(path.dirname(dir));
    }
  };
}
