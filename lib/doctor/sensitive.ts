/**
 * Where doctor() learns which memory of this process must never merge: the
 * ranges markSensitive() recorded (lib/security.ts), read on each call and
 * held by WeakRef there, so doctor never keeps the views alive.
 */
export { sensitiveRanges } from '../merge/security.js';
