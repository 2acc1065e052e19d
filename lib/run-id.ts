// The id of one run of the plugin: it names the run on the nodes it works on, in the lock's
// holder and in the names of the host-command pods it creates.
import { randomBytes } from 'node:crypto';

/** When the run started (UTC, to the second) and a random suffix: `20261124T100000-a1b2c3`. */
export const newRunId = (now = new Date()) => `${now.toISOString().replace(/[-:]/g, '').slice(0, 15)}-${randomBytes(3).toString('hex')}`;
