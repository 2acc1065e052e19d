import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CliError, ConfigError, describeError, ExitCode, exitCodeFor, InterruptedError, UsageError } from '../../lib/errors.js';

describe('exit codes', () => {
  it('are distinct', () => {
    const codes = Object.values(ExitCode);
    assert.equal(new Set(codes).size, codes.length);
  });

  it('come from the typed error, and 1 for anything else', () => {
    assert.equal(exitCodeFor(new UsageError('x')), ExitCode.usage);
    assert.equal(exitCodeFor(new ConfigError('x')), ExitCode.config);
    assert.equal(exitCodeFor(new InterruptedError()), ExitCode.interrupted);
    assert.equal(exitCodeFor(new TypeError('boom')), ExitCode.internal);
    assert.equal(exitCodeFor('a string'), ExitCode.internal);
  });
});

describe('describeError', () => {
  it('shows a typed error as message and hint, without a stack', () => {
    const lines = describeError(new ConfigError('no kubeconfig', 'pass --kubeconfig'), false);
    assert.deepEqual(lines, ['error: no kubeconfig', 'hint: pass --kubeconfig']);
  });

  it('shows the cause only when verbose', () => {
    const err = new CliError('failed', ExitCode.unreachable, undefined, { cause: new Error('ECONNREFUSED') });
    assert.equal(describeError(err, false).length, 1);
    assert.match(describeError(err, true).join('\n'), /cause: .*ECONNREFUSED/);
  });

  it('calls an unexpected error a bug and shows its stack only when verbose', () => {
    const err = new TypeError('undefined is not a function');
    assert.match(describeError(err, false).join('\n'), /unexpected failure: undefined is not a function\nhint: this is a bug/);
    assert.doesNotMatch(describeError(err, false).join('\n'), /\n\s+at /);
    assert.match(describeError(err, true).join('\n'), /\n\s+at /);
  });
});
