/**
 * Where doctor() learns which memory of this process must never merge: the
 * ranges markSensitive() recorded in any thread (lib/merge/security.ts; the
 * record is the addon's, process-wide, and holds no view alive), read on
 * each call.
 */
export { sensitiveRanges } from '../merge/security.js';
