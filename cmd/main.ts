// Entry point of kubectl-cilium_migrate: the only place that exits the process.
import { runCli } from './cli.js';
import type { Io } from './context.js';

// The first Ctrl-C asks the running command to stop at a safe point (or, when it only follows
// something that goes on without it, to detach: it says so); a second one exits now.
let interruptMeaning = 'stopping at the next safe point';
const io: Io = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  isTTY: Boolean(process.stdout.isTTY),
  onInterrupt: (meaning) => void (interruptMeaning = meaning),
};

const stop = new AbortController();
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stop.signal.aborted) process.exit(130);
    process.stderr.write(`\n${signal}: ${interruptMeaning} (again to quit at once)\n`);
    stop.abort(new Error(signal));
  });
}

const code = await runCli(process.argv.slice(2), io, stop.signal);
process.exitCode = code;
// Let stdout drain, then leave even if a client library keeps a socket open.
process.stdout.write('', () => process.exit(code));
