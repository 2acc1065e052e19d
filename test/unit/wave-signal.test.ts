// The signal a wave's nodes stop on: every node waits on it at once, which is not a leak and must
// not print Node's MaxListenersExceededWarning (it did once per wave of 50 at 1,000 nodes); a stop
// still reaches every waiter.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { systemClock } from '../../lib/clock.js';
import { waveSignalOf } from '../../cmd/engine/waves.js';

describe('waveSignalOf', () => {
  it('takes a wait per node of a 50-node wave without a listener warning, and stops them all', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      const run = new AbortController();
      const stop = new AbortController();
      const signal = waveSignalOf(run.signal, stop.signal, 50);
      const waits = Array.from({ length: 50 }, () => systemClock.sleep(60_000, signal));
      stop.abort();
      await Promise.all(waits);
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(warnings, []);
      assert.ok(signal.aborted);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('stops on the run\'s signal too', () => {
    const run = new AbortController();
    const signal = waveSignalOf(run.signal, new AbortController().signal, 3);
    run.abort();
    assert.ok(signal.aborted);
  });
});
