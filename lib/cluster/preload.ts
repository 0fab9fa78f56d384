/**
 * The `--require` target of mergeable-heap workers. Small on purpose: it
 * reads its configuration and hands over to the worker runtime.
 */
import { CONFIG_ENV, parseWorkerConfig } from './options.js';
import { startWorker } from './worker.js';

const text = process.env[CONFIG_ENV];
// Children of the worker are not siblings of the group.
delete process.env[CONFIG_ENV];
startWorker(parseWorkerConfig(text));
