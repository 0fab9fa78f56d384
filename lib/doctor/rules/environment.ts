/**
 * What keeps the knob fixes of the other findings from being applied here:
 * a read-only /sys (a container), or no root. Judged after them, from the
 * fixes they propose, which these findings repeat as the commands to run
 * where they can be.
 */
import { EVERY_SMAPS, SELF_MOUNTINFO_FILE, SELF_STATUS_FILE } from '../../kernel/names.js';
import { KSM, ev, finding } from '../finding.js';
import type { PendingFixesRule } from '../rule.js';
import type { Fix, Severity } from '../types.js';

/** Warn while a knob fix is pending (it cannot be applied from here); otherwise it is only how things are. */
function severityFor(pending: readonly Fix[]): Severity {
  return pending.length > 0 ? 'warn' : 'info';
}

export const sysfsReadOnly: PendingFixesRule = {
  phase: 'pending-fixes',
  meta: {
    codes: ['SYSFS_READ_ONLY'],
    severities: ['warn', 'info'],
    description: '/sys mounted read-only (a container): the knob fixes must run on the host',
  },
  check(facts, _derived, _options, pending) {
    const { mount, ksmWriteError } = facts;
    if (mount?.readOnly !== true && ksmWriteError !== 'EROFS') return [];
    const commands = pending.flatMap((fix) => fix.commands);
    return [
      finding(
        'SYSFS_READ_ONLY',
        severityFor(pending),
        `/sys is read-only here (a container?): KSM knobs cannot be changed from inside, only on the host`,
        [
          ...(mount
            ? [
                ev(SELF_MOUNTINFO_FILE, `${mount.mountPoint} mount options`, mount.mountOptions),
                ev(SELF_MOUNTINFO_FILE, `${mount.mountPoint} super options`, mount.superOptions),
              ]
            : []),
          ...(ksmWriteError !== undefined ? [ev(`${KSM}/run`, 'access(W_OK)', ksmWriteError)] : []),
        ],
        {
          summary:
            commands.length > 0
              ? 'Run these on the host (or in a privileged DaemonSet / init container with /sys mounted read-write)'
              : 'Knobs are set on the host; nothing needs changing now',
          commands,
        },
      ),
    ];
  },
};

export const notRoot: PendingFixesRule = {
  phase: 'pending-fixes',
  meta: {
    codes: ['NOT_ROOT'],
    severities: ['warn', 'info'],
    description: "not root: knob fixes need root, other users' processes are left out of the estimate",
  },
  check(facts, _derived, _options, pending) {
    const { euid, ksmWriteError, candidates } = facts;
    if (euid === undefined || euid === 0) return [];
    const commands = pending.flatMap((fix) => fix.commands);
    const unreadable = candidates.processesUnreadable;
    return [
      finding(
        'NOT_ROOT',
        severityFor(pending),
        `doctor() runs as uid ${euid}: KSM knobs need root to change` +
          (unreadable > 0
            ? `, and ${unreadable} other process(es) could not be read (any mergeable pages of theirs are left out of the scan estimate)`
            : ''),
        [
          ev(SELF_STATUS_FILE, 'Uid (effective)', euid),
          ...(ksmWriteError !== undefined ? [ev(`${KSM}/run`, 'access(W_OK)', ksmWriteError)] : []),
          ev(EVERY_SMAPS, 'processes unreadable', unreadable),
        ],
        {
          summary: commands.length > 0 ? 'Run the knob writes as root' : 'Run knob changes and machine-wide reports as root',
          commands: commands.map((command) => `sudo sh -c '${command}'`),
        },
      ),
    ];
  },
};
