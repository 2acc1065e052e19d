// The node-state contract the plugin, the agents and the lab share (lib/node-state.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  expectedOverlay, finalizedPhase, initialState, isUnderWay, migrationSteps, needsRollback, nodePhase, phaseAnnotation, phaseOf, readRollback, readState,
  rollbackAnnotation, rollbackAnnotations, rollbackPhase, rollbackSteps, stateAnnotation, stateAnnotations, type RollbackState,
} from '../../lib/node-state.js';

describe('node migration state', () => {
  const t = new Date('2026-01-01T00:00:00Z');
  it('round-trips through the node annotations', () => {
    const state = initialState('run-1', t, false, 'boot');
    const annotations = stateAnnotations(state);
    assert.deepEqual(readState(annotations), state);
    assert.equal(annotations[phaseAnnotation], 'baseline-gate');
  });

  it('reads nothing from missing or foreign annotations', () => {
    assert.equal(readState(undefined), undefined);
    assert.equal(readState({ [stateAnnotation]: 'not json' }), undefined);
    assert.equal(readState({ [stateAnnotation]: '{"v":2}' }), undefined);
    assert.equal(readState({ [stateAnnotation]: 'null' }), undefined);
  });

  it('names the first unfinished step as the phase', () => {
    const state = initialState('run-1', t, false, 'boot');
    assert.equal(phaseOf(undefined), 'pending');
    state.steps.cordon = { intent: 'x', done: 'y' };
    state.steps['baseline-gate'] = { done: 'y' };
    assert.equal(phaseOf(state), 'drain');
  });

  it('is finishing, not migrated, until the run records the node as migrated', () => {
    const state = initialState('run-1', t, false, 'boot');
    for (const s of migrationSteps) state.steps[s] = { done: 'y' };
    assert.equal(phaseOf(state), 'finishing');
    assert.equal(phaseOf({ ...state, migratedAt: 'z' }), 'migrated');
  });

  it('counts a finalized node (its records removed) as migrated', () => {
    assert.equal(nodePhase({ [phaseAnnotation]: finalizedPhase }), 'migrated');
    assert.equal(nodePhase({}), 'pending');
  });
});

describe('rollback state', () => {
  const record: RollbackState = { v: 1, startedBy: 'rb-1', lastRun: 'rb-1', startedAt: 't', wasUnschedulable: false, cordonedByUs: true, steps: { cordon: { done: 'x' }, drain: { intent: 'y' } } };

  it('round-trips, with the phase rollback-<next step>', () => {
    const annotations = rollbackAnnotations(record);
    assert.deepEqual(readRollback(annotations), record);
    assert.equal(annotations[phaseAnnotation], 'rollback-drain');
    assert.equal(rollbackPhase({ ...record, steps: Object.fromEntries(rollbackSteps.map((s) => [s, { done: 'x' }])) }), 'rollback-finishing');
  });

  it('reads a record of the earlier shape (the run named runId) as started by that run', () => {
    const old = { v: 1, runId: '20261101T100000-abcdef', startedAt: 't', wasUnschedulable: false, cordonedByUs: true, steps: { cordon: { intent: 'a', done: 'b' } } };
    const read = readRollback({ [rollbackAnnotation]: JSON.stringify(old) })!;
    assert.equal(read.startedBy, '20261101T100000-abcdef');
    assert.equal(read.lastRun, '20261101T100000-abcdef');
    assert.equal('runId' in read, false);
    assert.deepEqual(read.steps, old.steps);
  });

  it('says whether a node has anything to roll back', () => {
    const label = 'io.cilium.migration/cilium-default';
    assert.equal(needsRollback({ labels: {}, annotations: {} }, label), false);
    assert.equal(needsRollback({ labels: { [label]: 'true' }, annotations: {} }, label), true);
    assert.equal(needsRollback({ labels: {}, annotations: stateAnnotations(initialState('r', new Date(0), false, 'b')) }, label), true);
    assert.equal(needsRollback({ labels: {}, annotations: rollbackAnnotations(record) }, label), true);
  });
});

describe('isUnderWay: which nodes are in the migration\'s focus', () => {
  const cases: [string | undefined, boolean][] = [
    [undefined, false], ['', false], ['pending', false], ['migrated', false], [finalizedPhase, false],
    ...migrationSteps.map((s): [string, boolean] => [s, true]), ['finishing', true], ['rollback-drain', true], ['rollback-finishing', true],
  ];
  for (const [phase, under] of cases) it(`${phase ?? '(none)'}: ${under}`, () => assert.equal(isUnderWay(phase), under));
});

describe('expectedOverlay', () => {
  const label = 'io.cilium.migration/cilium-default';
  const cases: [Record<string, string>, string | undefined, 'legacy' | 'cilium'][] = [
    [{}, undefined, 'legacy'], [{ [label]: 'true' }, 'drain', 'cilium'], [{ [label]: 'false' }, undefined, 'legacy'], [{}, finalizedPhase, 'cilium'], [{}, 'rollback-verify', 'legacy'],
  ];
  for (const [labels, phase, overlay] of cases) it(`${JSON.stringify(labels)} ${phase ?? ''} -> ${overlay}`, () => assert.equal(expectedOverlay(labels, label, phase), overlay));
});
