// kubectl drain's pod filters, as a table: what is evicted, skipped or refused under which flags.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyDrainPods, defaultDrainFlags, type DrainAction, type DrainFlags, type DrainPod } from '../../cmd/cluster/drain-filter.js';

const now = new Date('2026-01-01T00:10:00Z');
const pod = (name: string, extra: Partial<DrainPod> = {}): DrainPod => ({
  namespace: 'default', name, uid: `uid-${name}`, phase: 'Running', mirror: false, emptyDir: false,
  controller: { kind: 'ReplicaSet', name: 'rs' }, ...extra,
});
const ds = { kind: 'DaemonSet', name: 'agent' };
const orphanDs = { kind: 'DaemonSet', name: 'gone' };
const exists = (_ns: string, name: string) => name !== 'gone';

const cases: { name: string; pod: DrainPod; flags?: Partial<DrainFlags>; action: DrainAction; reason?: RegExp }[] = [
  { name: 'a ReplicaSet pod is evicted', pod: pod('web'), action: 'evict' },
  { name: 'a DaemonSet pod stays by default (--ignore-daemonsets semantics)', pod: pod('ds', { controller: ds }), action: 'skip', reason: /DaemonSet/ },
  { name: 'a DaemonSet pod is refused without --ignore-daemonsets', pod: pod('ds', { controller: ds }), flags: { ignoreDaemonSets: false }, action: 'refuse', reason: /--ignore-daemonsets/ },
  { name: 'a finished DaemonSet pod is evicted', pod: pod('ds', { controller: ds, phase: 'Succeeded' }), action: 'evict' },
  { name: 'an orphaned DaemonSet pod needs --force', pod: pod('ds', { controller: orphanDs }), action: 'refuse', reason: /--force/ },
  { name: 'an orphaned DaemonSet pod is evicted with --force', pod: pod('ds', { controller: orphanDs }), flags: { force: true }, action: 'evict', reason: /does not exist/ },
  { name: 'a mirror pod is skipped', pod: pod('etcd', { mirror: true, controller: { kind: 'Node', name: 'n' } }), action: 'skip', reason: /mirror/ },
  { name: 'an emptyDir pod is refused without --delete-emptydir-data', pod: pod('cache', { emptyDir: true }), action: 'refuse', reason: /--delete-emptydir-data/ },
  { name: 'an emptyDir pod is evicted with --delete-emptydir-data', pod: pod('cache', { emptyDir: true }), flags: { deleteEmptyDirData: true }, action: 'evict', reason: /emptyDir/ },
  { name: 'a finished emptyDir pod is evicted', pod: pod('cache', { emptyDir: true, phase: 'Failed' }), action: 'evict' },
  { name: 'an unmanaged pod is refused without --force', pod: pod('bare', { controller: undefined }), action: 'refuse', reason: /--force/ },
  { name: 'an unmanaged pod is evicted with --force', pod: pod('bare', { controller: undefined }), flags: { force: true }, action: 'evict', reason: /nothing recreates/ },
  { name: 'a finished unmanaged pod is evicted', pod: pod('job', { controller: undefined, phase: 'Succeeded' }), action: 'evict' },
  { name: 'an unmanaged emptyDir pod reports the first refusal (emptyDir)', pod: pod('bare', { controller: undefined, emptyDir: true }), action: 'refuse', reason: /--delete-emptydir-data/ },
  { name: 'a pod deleted long ago is skipped with --skip-wait-for-delete-timeout', pod: pod('old', { deletionTimestamp: new Date('2026-01-01T00:00:00Z') }), flags: { skipWaitForDeleteTimeoutSeconds: 60 }, action: 'skip' },
  { name: 'a pod being deleted is still evicted by default', pod: pod('old', { deletionTimestamp: new Date('2026-01-01T00:00:00Z') }), action: 'evict' },
];

describe('classifyDrainPods', () => {
  for (const c of cases) {
    it(c.name, () => {
      const [decision] = classifyDrainPods([c.pod], { ...defaultDrainFlags, ...c.flags }, exists, now);
      assert.equal(decision?.action, c.action);
      if (c.reason) assert.match(decision?.reason ?? '', c.reason);
    });
  }

  it('keeps the order of the pods and decides each on its own', () => {
    const decisions = classifyDrainPods([pod('a'), pod('b', { controller: ds }), pod('c', { controller: undefined })], defaultDrainFlags, exists, now);
    assert.deepEqual(decisions.map((d) => [d.pod.name, d.action]), [['a', 'evict'], ['b', 'skip'], ['c', 'refuse']]);
  });
});
