// The command line without a cluster: help, version, usage errors and exit codes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runCli } from '../../cmd/cli.js';
import type { Io } from '../../cmd/context.js';
import { ExitCode } from '../../lib/errors.js';
import { version } from '../../lib/version.js';

function captureIo(): Io & { stdout: string; stderr: string } {
  const io = {
    stdout: '',
    stderr: '',
    isTTY: false,
    out: (t: string) => void (io.stdout += t),
    err: (t: string) => void (io.stderr += t),
  };
  return io;
}

const noKubeconfig = { env: {}, home: '/nonexistent-home', exists: () => false };

async function run(args: string[]) {
  const io = captureIo();
  // yargs prints help and version through console.log; capture that too.
  const log = console.log;
  console.log = (...a: unknown[]) => io.out(a.join(' ') + '\n');
  try {
    const code = await runCli(args, io, new AbortController().signal, noKubeconfig);
    return { code, ...io };
  } finally {
    console.log = log;
  }
}

describe('runCli', () => {
  it('prints help with exit 0', async () => {
    const r = await run(['--help']);
    assert.equal(r.code, ExitCode.ok);
    assert.match(r.stdout, /kubectl cilium-migrate <command>/);
    assert.match(r.stdout, /version +Print the plugin version/);
  });

  it('prints the version with exit 0', async () => {
    const r = await run(['--version']);
    assert.equal(r.code, ExitCode.ok);
    assert.equal(r.stdout.trim(), version);
  });

  it('asks for a command when none is given (exit 2)', async () => {
    const r = await run([]);
    assert.equal(r.code, ExitCode.usage);
    assert.match(r.stderr, /error: name a command/);
  });

  it('rejects an unknown flag (exit 2)', async () => {
    const r = await run(['version', '--client', '--bogus-flag']);
    assert.equal(r.code, ExitCode.usage);
    assert.match(r.stderr, /Unknown argument: bogus-flag/);
  });

  it('rejects an unknown output format (exit 2)', async () => {
    const r = await run(['version', '--client', '-o', 'xml']);
    assert.equal(r.code, ExitCode.usage);
    assert.match(r.stderr, /Invalid values/);
  });

  it('renders version --client as json and yaml', async () => {
    const json = await run(['version', '--client', '-o', 'json']);
    assert.deepEqual(JSON.parse(json.stdout), { clientVersion: version });
    const yaml = await run(['version', '--client', '-o', 'yaml']);
    assert.equal(yaml.stdout, `clientVersion: ${version}\n`);
  });

  it('needs no kubeconfig for --client, and exits 3 without one otherwise', async () => {
    assert.equal((await run(['version', '--client'])).code, ExitCode.ok);
    const r = await run(['version']);
    assert.equal(r.code, ExitCode.config);
    assert.match(r.stderr, /^error: no kubeconfig found/);
    assert.match(r.stderr, /hint: pass --kubeconfig FILE/);
  });
});
