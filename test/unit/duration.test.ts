import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDuration } from '../../lib/duration.js';

describe('parseDuration', () => {
  const cases: [string, number][] = [['90s', 90_000], ['10m', 600_000], ['1h30m', 5_400_000], ['600', 600_000], ['1.5s', 1500], ['250ms', 250], ['2m30s', 150_000]];
  for (const [text, ms] of cases) it(`${text} = ${ms} ms`, () => assert.equal(parseDuration(text), ms));
  for (const bad of ['', 'ten', '10x', '5m garbage', '-1s']) it(`rejects "${bad}"`, () => assert.throws(() => parseDuration(bad), /is not a duration/));
});
