// Who may take the migration lock, as a table over (monotonic) time, and the fence that stops a run
// whose lock may have lapsed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LeaseView } from '../../cmd/cluster/cluster.js';
import { acquireLock, decideLock, fencedCluster, formatHolder, LockedError, LockLostError, machineIdentity, parseHolder, type Holder, type LockClock, type Observation } from '../../cmd/engine/lock.js';
import { inClusterRun } from '../../lib/defaults.js';
import { ExitCode } from '../../lib/errors.js';

const me: Holder = { host: 'laptop', machine: 'm-laptop', boot: 'b1', pid: 100, run: 'r-me' };
const other: Holder = { host: 'ci-runner', machine: 'm-ci', boot: 'b9', pid: 200, run: 'r-other' };
const t0 = new Date('2026-01-01T00:00:00Z');
const lease = (h: Holder | string, renewedAt = t0, ttl = 60, rv = '1'): LeaseView => ({ holder: typeof h === 'string' ? h : formatHolder(h), renewTime: renewedAt, durationSeconds: ttl, resourceVersion: rv });
const alive = () => true;
const dead = () => false;

/** Feeds `decideLock` a series of (monotonic second, lease) observations, as the acquire loop does. */
function watch(steps: [number, LeaseView][], pidAlive = alive) {
  let seen: Observation | undefined;
  const decisions = [];
  for (const [s, l] of steps) {
    const r = decideLock(l, me, seen, s * 1000, pidAlive);
    seen = r.observation;
    decisions.push(r.decision);
  }
  return decisions;
}

describe('decideLock', () => {
  it('takes a lock nobody holds', () => assert.equal(watch([[0, undefined as unknown as LeaseView]])[0]!.kind, 'free'));
  it('takes an emptied lease', () => assert.equal(watch([[0, lease('')]])[0]!.kind, 'free'));
  it('keeps its own lock', () => assert.equal(watch([[30, lease(me)]])[0]!.kind, 'mine'));

  it('does not judge another machine\'s lease at first sight, however old its renewTime looks on our clock', () => {
    // A renewTime two days old by our clock says nothing: the clocks may disagree.
    const d = watch([[0, lease(other, new Date(t0.getTime() - 2 * 86_400_000))]]);
    assert.deepEqual(d[0], { kind: 'watch', holder: 'run r-other (pid 200 on ci-runner)', leftMs: 60_000 });
  });

  it('refuses as soon as it sees the holder renew, saying who', () => {
    const d = watch([[0, lease(other, t0, 60, '1')], [5, lease(other, new Date(t0.getTime() + 20_000), 60, '2')]]);
    assert.deepEqual(d[1], { kind: 'held', holder: 'run r-other (pid 200 on ci-runner)', reason: 'it renewed the lease while we watched' });
  });

  it('takes over only after watching the lease go unrenewed for its whole duration, on the local clock', () => {
    const l = lease(other, new Date(t0.getTime() + 3_600_000), 60);
    const d = watch([[100, l], [130, l], [159.9, l], [160, l]]);
    assert.deepEqual(d.map((x) => x.kind), ['watch', 'watch', 'watch', 'stale']);
    assert.match(d[3]!.kind === 'stale' ? d[3]!.reason : '', /did not renew it during the 60s we watched \(its TTL is 60s\)/);
  });

  it('takes over at once a lock held by a dead process of this machine and boot', () => {
    const d = watch([[0, lease({ ...me, pid: 99, run: 'r-old' })]], dead);
    assert.equal(d[0]!.kind, 'stale');
    assert.match(d[0]!.kind === 'stale' ? d[0]!.reason : '', /pid 99 on this machine\) is no longer running/);
  });

  it('refuses at once a lock held by a live process of this machine and boot', () => {
    assert.equal(watch([[0, lease({ ...me, pid: 99, run: 'r-old' })]], alive)[0]!.kind, 'held');
  });

  it('takes over at once a lock held on this machine before it rebooted', () => {
    const d = watch([[0, lease({ ...me, boot: 'b0', pid: 99, run: 'r-old' })]], alive);
    assert.match(d[0]!.kind === 'stale' ? d[0]!.reason : '', /before it rebooted/);
  });

  it('never takes the same hostname on another machine for a dead local process', () => {
    // Same host name, same pid that is dead here: but another machine-id, so only watching decides.
    const twin = { ...other, host: me.host, pid: 99 };
    assert.equal(watch([[0, lease(twin)]], dead)[0]!.kind, 'watch');
  });

  it('judges a holder in the old format (no machine) by watching only', () => {
    assert.equal(watch([[0, lease('host=laptop;pid=99;run=r-old')]], dead)[0]!.kind, 'watch');
    assert.equal(watch([[0, lease('someone')], [61, lease('someone')]], dead)[1]!.kind, 'stale');
  });
});

describe('holder identity', () => {
  it('round-trips', () => assert.deepEqual(parseHolder(formatHolder(me)), me));
  it('rejects garbage', () => assert.equal(parseHolder('x=y'), undefined));
  it('names the machine by a hash of its machine-id (never the id itself) and the boot by its boot_id', () => {
    const files: Record<string, string> = { '/etc/machine-id': '0123456789abcdef0123456789abcdef', '/proc/sys/kernel/random/boot_id': 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee' };
    const id = machineIdentity((f) => files[f] ?? '');
    assert.match(id.machine, /^[0-9a-f]{16}$/);
    assert.ok(!files['/etc/machine-id']!.includes(id.machine));
    assert.equal(id.boot, 'aaaaaaaabbbb');
    assert.notEqual(machineIdentity((f) => (f === '/etc/machine-id' ? 'another' : files[f] ?? '')).machine, id.machine);
  });

  it('tells two run pods of one image on one node apart by their pod UID, so neither takes the other\'s live lease', () => {
    // The same image (same machine-id) on the same kernel (same boot_id): only the pod UID differs.
    const files: Record<string, string> = { '/etc/machine-id': 'baked-into-the-image', '/proc/sys/kernel/random/boot_id': 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee' };
    const read = (f: string) => files[f] ?? '';
    const old = machineIdentity(read, { [inClusterRun.env.podUid]: 'uid-old' });
    const next = machineIdentity(read, { [inClusterRun.env.podUid]: 'uid-new' });
    assert.notEqual(old.machine, next.machine);
    assert.notEqual(old.machine, machineIdentity(read, {}).machine, 'a pod is not the machine its image was made on');
    // Both pods' processes are pid 1 in their own PID namespace: the successor must not ask the pid.
    const holder: Holder = { host: 'run-old', ...old, pid: 1, run: 'r-old' };
    const successor: Holder = { host: 'run-new', ...next, pid: 1, run: 'r-new' };
    const first = decideLock(lease(holder), successor, undefined, 0, alive);
    assert.equal(first.decision.kind, 'watch', 'another pod\'s lease is watched, never taken or refused on a pid');
    assert.equal(decideLock(lease(holder), successor, first.observation, 60_000, alive).decision.kind, 'stale', 'taken once it went a whole TTL unrenewed');
    // Without the pod UID the two would look like one machine and boot, and pid 1 alive: refused.
    const a: Holder = { host: 'run-old', ...machineIdentity(read, {}), pid: 1, run: 'r-old' };
    const b: Holder = { host: 'run-new', ...machineIdentity(read, {}), pid: 1, run: 'r-new' };
    assert.equal(decideLock(lease(a), b, undefined, 0, alive).decision.kind, 'held');
  });
});

/** A lease store in memory and a clock whose monotonic time the test moves. */
function fakes(initial?: LeaseView) {
  let current = initial;
  let rv = 10;
  let mono = 0;
  let wall = t0.getTime();
  let failWrites = false;
  const writes: string[] = [];
  const store = {
    async getLease() {
      return current;
    },
    async writeLease(_ns: string, _name: string, holder: string, durationSeconds: number, now: Date, resourceVersion?: string) {
      if (failWrites) throw new Error('API server unreachable');
      if ((current?.resourceVersion ?? undefined) !== resourceVersion) return false;
      current = { holder, renewTime: now, durationSeconds, resourceVersion: String(++rv) };
      writes.push(holder);
      return true;
    },
    async deleteLease() {
      current = undefined;
    },
  };
  const clock: LockClock = {
    now: () => wall,
    monotonic: () => mono,
    sleep: async (ms) => {
      mono += ms;
      wall += ms;
    },
  };
  return {
    store, clock, writes,
    advance: (ms: number) => {
      mono += ms;
      wall += ms;
    },
    setFailWrites: (v: boolean) => (failWrites = v),
    lease: () => current,
    setLease: (l: LeaseView | undefined) => (current = l),
  };
}

describe('acquireLock', () => {
  const opts = { namespace: 'kube-system', name: 'cilium-migrate', ttlSeconds: 60, runId: 'r-me' };
  const id = { machine: me.machine, boot: me.boot };

  it('refuses a lease whose holder renews while it watches', async () => {
    const f = fakes(lease(other, t0, 60, '1'));
    let renewed = false;
    const clock = { ...f.clock, sleep: async (ms: number) => {
      await f.clock.sleep(ms);
      if (!renewed) f.setLease(lease(other, new Date(f.clock.now()), 60, '2'));
      renewed = true;
    } };
    const lines: string[] = [];
    await assert.rejects(acquireLock(f.store, opts, clock, (l) => lines.push(l), undefined, id, alive), (e: unknown) => e instanceof LockedError && e.exitCode === ExitCode.locked && /it renewed the lease while we watched/.test(e.message));
    assert.match(lines[0]!, /is held by run r-other .*watching for up to 60s/);
  });

  it('takes over a lease left unrenewed for its duration, whatever its renewTime says', async () => {
    // renewTime an hour in our future: a skewed clock over there. Watched 60 s unchanged, it is stale.
    const f = fakes(lease(other, new Date(t0.getTime() + 3_600_000), 60, '1'));
    const lines: string[] = [];
    const lock = await acquireLock(f.store, opts, f.clock, (l) => lines.push(l), undefined, id, alive);
    assert.match(lines.at(-1)!, /taking over the migration lock: its holder \(run r-other .*\) did not renew it during the 60s we watched/);
    assert.equal(parseHolder(f.lease()!.holder)?.run, 'r-me');
    await lock.release();
  });

  it('keeps renewing when one renewal never gets an answer: the next period sends another, and the run goes on', async () => {
    const f = fakes();
    const lines: string[] = [];
    const lock = await acquireLock(f.store, opts, f.clock, (l) => lines.push(l), undefined, id, alive);
    const getLease = f.store.getLease;
    let hung = 0;
    // One GET that the API server never answers (no reply, no error, no timeout).
    f.store.getLease = () => {
      f.store.getLease = getLease;
      hung++;
      return new Promise<never>(() => {});
    };
    const tick = () => new Promise((r) => setTimeout(r, 1_100));
    f.advance(21_000);
    await tick();
    assert.equal(hung, 1, 'the first renewal was sent and hangs');
    f.advance(21_000);
    await tick();
    // 42 s after the last renewal that succeeded; the second attempt renews it.
    assert.equal(f.writes.length, 2, 'a second renewal was sent while the first still hangs, and it succeeded');
    assert.match(lines.join('\n'), /renewal sent 21s ago has no answer yet; sending another/);
    f.advance(10_000);
    // 52 s after acquiring: without that second renewal the fence (45 s) would have stopped the run.
    assert.doesNotThrow(() => lock.check('patchNode'));
    assert.equal(lock.lost.aborted, false);
    await lock.release();
  });

  it('fences: a run stops before its next change once its last renewal is older than the TTL minus the margin', async () => {
    const f = fakes();
    const lock = await acquireLock(f.store, opts, f.clock, () => {}, undefined, id, alive);
    const changes: string[] = [];
    const cluster = fencedCluster({ patchNode: async (n: string) => void changes.push(n), getNode: async (n: string) => n }, lock);
    await cluster.patchNode('w1');
    f.setFailWrites(true);
    f.advance(44_000);
    await cluster.patchNode('w2');
    assert.equal(await cluster.getNode('w3'), 'w3', 'reads are not fenced');
    f.advance(2_000);
    // 46 s since the last renewal: past 60 s x (1 - 0.25).
    await assert.rejects(cluster.patchNode('w4'), (e: unknown) => e instanceof LockLostError && e.exitCode === ExitCode.locked && /last renewed 46s ago .*\(before patchNode\)/.test(e.message));
    assert.deepEqual(changes, ['w1', 'w2']);
    assert.ok(lock.lost.aborted, 'the run is told to stop');
    // Lost is final: a later successful renewal does not make the run trust the lock again.
    f.setFailWrites(false);
    assert.throws(() => lock.check('anything'), LockLostError);
    await lock.release();
  });
});
