// Who may take the migration lock, as a table over time.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decideLock, formatHolder, parseHolder, type Holder } from '../../cmd/engine/lock.js';

const me: Holder = { host: 'laptop', pid: 100, run: 'r-me' };
const other: Holder = { host: 'ci-runner', pid: 200, run: 'r-other' };
const t0 = new Date('2026-01-01T00:00:00Z');
const at = (s: number) => new Date(t0.getTime() + s * 1000);
const lease = (h: Holder | string, renewedAt = t0, ttl = 60) => ({ holder: typeof h === 'string' ? h : formatHolder(h), renewTime: renewedAt, durationSeconds: ttl, resourceVersion: '1' });
const alive = () => true;
const dead = () => false;

describe('decideLock', () => {
  it('takes a lock nobody holds', () => assert.equal(decideLock(undefined, me, t0, alive).kind, 'free'));
  it('takes an emptied lease', () => assert.equal(decideLock(lease(''), me, t0, alive).kind, 'free'));
  it('keeps its own lock', () => assert.equal(decideLock(lease(me), me, at(30), alive).kind, 'mine'));
  it('refuses a lock renewed within its TTL, saying who holds it and for how long', () => {
    const d = decideLock(lease(other), me, at(20), alive);
    assert.deepEqual(d, { kind: 'held', holder: 'run r-other (pid 200 on ci-runner)', secondsLeft: 40 });
  });
  it('takes over a lock whose holder stopped renewing past the TTL', () => {
    const d = decideLock(lease(other), me, at(61), alive);
    assert.equal(d.kind, 'stale');
    assert.match(d.kind === 'stale' ? d.reason : '', /stopped renewing it 61s ago/);
  });
  it('takes over at once a lock held by a dead process on this machine', () => {
    const d = decideLock(lease({ host: 'laptop', pid: 99, run: 'r-old' }), me, at(1), dead);
    assert.equal(d.kind, 'stale');
    assert.match(d.kind === 'stale' ? d.reason : '', /pid 99 on this machine\) is no longer running/);
  });
  it('does not judge a process on another machine by a local pid', () => {
    assert.equal(decideLock(lease(other), me, at(1), dead).kind, 'held');
  });
  it('treats an unparseable holder by its lease times only', () => {
    assert.equal(decideLock(lease('someone'), me, at(1), dead).kind, 'held');
    assert.equal(decideLock(lease('someone'), me, at(60), dead).kind, 'stale');
  });
});

describe('holder identity', () => {
  it('round-trips', () => assert.deepEqual(parseHolder(formatHolder(me)), me));
  it('rejects garbage', () => assert.equal(parseHolder('x=y'), undefined));
});
