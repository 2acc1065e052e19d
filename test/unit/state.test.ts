import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { initialState, phaseAnnotation, phaseOf, readState, stateAnnotation, stateAnnotations, stepNames } from '../../cmd/engine/state.js';

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
    for (const s of stepNames) state.steps[s] = { done: 'y' };
    assert.equal(phaseOf(state), 'finishing');
    assert.equal(phaseOf({ ...state, migratedAt: 'z' }), 'migrated');
  });
});
