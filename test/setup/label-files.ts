/**
 * Label files the run's children leave. A child that publishes its labels
 * (node-ksm/register, publishLabels()) removes its file at exit, but the
 * tests end many with SIGKILL or SIGTERM, where 'exit' never runs: at the
 * run's end the label directories are cleared of files no live process
 * stands behind (lib/kernel/label-file.ts pruneLabelFiles(), the prune a
 * publisher makes at its start), so a run leaves none of its own.
 */
import { labelDirs, pruneLabelFiles } from '../../lib/kernel/label-file.js';

export default function setup(): () => void {
  return () => {
    const uid = typeof process.geteuid === 'function' ? process.geteuid() : 0;
    for (const dir of labelDirs(uid)) pruneLabelFiles(dir);
  };
}
