// Runs after the integration suite (make test-integration): nothing the suite started may still
// run, and it may leave no file in the TMPDIR it was given.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { pidsMentioning } from '../lab/control-plane.js';

const suiteTmp = process.env.SUITE_TMPDIR;

describe('after the integration suite', () => {
  it('was told which TMPDIR the suite used', () => {
    assert.ok(suiteTmp && existsSync(suiteTmp), `SUITE_TMPDIR=${suiteTmp} names the suite's directory`);
  });

  it('no process started by the suite is still running', () => {
    const left = pidsMentioning(suiteTmp!);
    assert.deepEqual(left, [], `processes still running from ${suiteTmp}`);
  });

  it('the suite left no temporary file', () => {
    assert.deepEqual(readdirSync(suiteTmp!), [], `left in ${suiteTmp}`);
  });
});
