// Reading the matrix through an in-memory RowSource: one request per agent, bounded concurrency,
// a limit per request, failures turned into UNKNOWN cells; and the views drawn from the result.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readMatrix, type AgentPodRef, type RowSource } from '../../cmd/matrix/read.js';
import { connectivityReport, htmlView, terminalView, type ConnectivityReport } from '../../cmd/connectivity/views.js';
import { serveReports } from '../../cmd/connectivity/serve.js';
import { listenAddress as parseListenAddress, sinceTime, timeOrSpan } from '../../lib/flag-values.js';
import { baselineFromRecord, matrixGate } from '../../cmd/engine/matrix-gate.js';
import { evaluateGate } from '../../lib/connectivity-gate.js';
import { CliError, ExitCode } from '../../lib/errors.js';
import { assembleMatrix } from '../../lib/reachability.js';
import { rowSchema, type Row } from '../../lib/row.js';

const now = Date.parse('2026-11-24T12:00:00Z');
const sinceValue = timeOrSpan(86_400_000);
const since = new Date(now - 10_000);

function fakeSource(n: number, behave: (pod: AgentPodRef) => 'ok' | 'hang' | 'fail' | 'forbidden' = () => 'ok') {
  const calls = { nodes: 0, agents: 0, rows: 0, inFlight: 0, maxInFlight: 0 };
  const names = Array.from({ length: n }, (_, i) => `n${i}`);
  const overlay = (i: number) => (i % 2 ? 'cilium' : 'legacy') as 'legacy' | 'cilium';
  const source: RowSource = {
    nodes: async () => {
      calls.nodes++;
      return names.map((name, i) => ({ name, ready: true, expectedOverlay: overlay(i) }));
    },
    agents: async () => {
      calls.agents++;
      return names.map((name, i) => ({ node: name, pod: `agent-${name}`, namespace: 'cilium-migrate', ip: `10.${overlay(i) === 'legacy' ? 244 : 245}.${i}.5`, ready: true }));
    },
    row: async (pod) => {
      calls.rows++;
      calls.inFlight++;
      calls.maxInFlight = Math.max(calls.maxInFlight, calls.inFlight);
      try {
        await new Promise((r) => setTimeout(r, 5));
        const how = behave(pod);
        if (how === 'hang') await new Promise((r) => setTimeout(r, 10_000).unref());
        if (how === 'fail') throw new Error('proxy answered 503: connection refused');
        if (how === 'forbidden') throw new CliError('forbidden', ExitCode.forbidden);
        const i = names.indexOf(pod.node);
        const last = new Date(now - 300).toISOString();
        const row: Row = {
          schema: rowSchema, identity: { node: pod.node, pod: pod.pod, namespace: pod.namespace, ip: pod.ip, overlay: overlay(i), expectedOverlay: overlay(i), version: '0.1.0' },
          generation: 1, generatedAt: new Date(now).toISOString(), startedAt: new Date(now - 60_000).toISOString(), intervalMs: 1000, windowMs: 30_000, since: since.toISOString(),
          cells: names.filter((m) => m !== pod.node).map((m) => ({
            peer: { node: m, pod: `agent-${m}`, ip: '10.0.0.1', overlay: overlay(names.indexOf(m)) }, focus: false,
            stats: (['icmp', 'http'] as const).map((protocol) => ({ protocol, samples: 5, successes: 5, successRatio: 1, rttP50Ms: 0.4, rttP90Ms: 0.5, rttP99Ms: 0.6, firstSampleAt: new Date(now - 5000).toISOString(), lastSampleAt: last, lastSuccessAt: last, lastFailureAt: null, lastError: null })),
          })),
        };
        return row;
      } finally {
        calls.inFlight--;
      }
    },
  };
  return { source, calls };
}

describe('readMatrix', () => {
  it('makes two LISTs and one GET per agent, never more than `concurrency` at once', async () => {
    const { source, calls } = fakeSource(40);
    const read = await readMatrix(source, { since, concurrency: 4, timeoutMs: 1000, now: () => now });
    assert.deepEqual({ nodes: calls.nodes, agents: calls.agents, rows: calls.rows }, { nodes: 1, agents: 1, rows: 40 });
    assert.ok(calls.maxInFlight <= 4 && calls.maxInFlight > 1, `in flight at most 4, saw ${calls.maxInFlight}`);
    const matrix = assembleMatrix(read, { staleRowMs: 30_000 });
    assert.equal(matrix.cells.length, 40 * 39);
    assert.ok(matrix.cells.every((c) => c.mark === 'reachable'));
  });

  it('turns a hanging and a failing agent into UNKNOWN rows within the per-request limit', async () => {
    const { source } = fakeSource(4, (p) => (p.node === 'n1' ? 'hang' : p.node === 'n2' ? 'fail' : 'ok'));
    const started = Date.now();
    const read = await readMatrix(source, { since, concurrency: 8, timeoutMs: 200, now: () => now });
    assert.ok(Date.now() - started < 2000, 'the hanging GET did not hold the read');
    const matrix = assembleMatrix(read, { staleRowMs: 30_000 });
    assert.match(matrix.nodes.find((n) => n.name === 'n1')!.rowProblem!, /timed out after 0.2s/);
    assert.match(matrix.nodes.find((n) => n.name === 'n2')!.rowProblem!, /503/);
    assert.ok(matrix.cells.filter((c) => c.src === 'n1').every((c) => c.mark === 'unknown'), 'no gaps: every cell of n1 is there, unknown');
    assert.equal(evaluateGate({ matrix, focus: [], policy: { minSamples: 3, successThreshold: 0.95 } }).verdict, 'UNKNOWN');
  });

  it('stops on a missing permission instead of reporting every agent unknown', async () => {
    const { source } = fakeSource(3, () => 'forbidden');
    await assert.rejects(readMatrix(source, { since, concurrency: 2, timeoutMs: 1000, now: () => now }), (err: CliError) => err.exitCode === ExitCode.forbidden);
  });
});

describe('connectivity views', () => {
  it('draw the grid by overlay, the 2x2 summary and, in HTML, one cell per pair; colour only when asked', async () => {
    const { source } = fakeSource(4, (p) => (p.node === 'n3' ? 'fail' : 'ok'));
    const matrix = assembleMatrix(await readMatrix(source, { since, concurrency: 2, timeoutMs: 1000, now: () => now }), { staleRowMs: 30_000 });
    const policy = { minSamples: 3, successThreshold: 0.95 };
    const evaluation = evaluateGate({ matrix, focus: [], policy });
    const report = connectivityReport(matrix, evaluation, evaluation.verdict, { needed: 1, passedInARow: 0 }, [], policy);
    const plain = terminalView(report, false, false, 40);
    assert.doesNotMatch(plain, /\x1b\[/, 'no escape codes off a terminal');
    assert.match(terminalView(report, false, true, 40), /\x1b\[/);
    assert.match(plain, /Connectivity: UNKNOWN/);
    const lines = plain.split('\n');
    const order = ['n0', 'n2', 'n1', 'n3'].map((n) => lines.findIndex((l) => new RegExp(`^ *\\d+ ${n} `).test(l)));
    assert.deepEqual([...order].sort((a, b) => a - b), order, 'legacy nodes first, then Cilium');
    assert.match(plain, /cilium->legacy\s+4\s+2\s+0\s+0\s+2/);
    assert.match(plain, /node n3: row of agent-n3 unreadable: proxy answered 503/);
    assert.match(terminalView(report, true, false, 40), /ICMP\s+HTTP\s+LARGE/);
    const html = htmlView(report);
    assert.equal([...html.matchAll(/<td class="cell /g)].length, 12);
    assert.match(html, /<tr data-pair="cilium->legacy" data-total="4" data-reachable="2" data-lossy="0" data-unreachable="0" data-unknown="2">/);
    assert.doesNotMatch(html, /<(script|link)\b|src="http/, 'self-contained');
  });

  it('--since takes a duration back from now or a time', () => {
    assert.equal(sinceTime(sinceValue('30s'), now).getTime(), now - 30_000);
    assert.equal(sinceTime(sinceValue('2026-11-24T11:00:00Z'), now).toISOString(), '2026-11-24T11:00:00.000Z');
    assert.throws(() => sinceValue('soon'), /a duration back from now/);
  });
});

describe('matrixGate (the engine\'s gate over the matrix)', () => {
  const policy = { minSamples: 3, successThreshold: 0.95 };
  const focusNode = (name: string) => ({ name, uid: '', unschedulable: true, labels: {}, annotations: {}, providerID: '', bootID: '', ready: true, podCIDRs: [], controlPlane: false });

  it('records what fails at the baseline, keeps it in the step data, and tolerates it in the focused check', async () => {
    // n3's row cannot be read: every cell from it is unknown at the baseline and after.
    const { source } = fakeSource(4, (p) => (p.node === 'n3' ? 'fail' : 'ok'));
    const gate = matrixGate(source, { policy, concurrency: 4, timeoutMs: 1000, lookbackMs: 10_000 }, { now: () => now });
    const baseline = await gate.baseline();
    assert.equal(baseline.verdict, 'UNKNOWN', 'a Ready node whose agent does not report stops the baseline');

    const { source: healthy } = fakeSource(4);
    const okGate = matrixGate(healthy, { policy, concurrency: 4, timeoutMs: 1000, lookbackMs: 10_000 }, { now: () => now });
    const ok = await okGate.baseline();
    assert.equal(ok.verdict, 'PASS');
    assert.deepEqual((ok.record as { matrixBaseline: { cells: string[] } }).matrixBaseline.cells, []);
    // The focus check counts only samples since the restart: five since then satisfy M = 3.
    const check = await okGate.check(focusNode('n1'), since, ok.record);
    assert.equal(check.verdict, 'PASS', check.reasons.join('\n'));
  });

  describe('a wave of 50 nodes among 200 agents', () => {
    // Each agent probes the 5 nodes after it and every node of the wave, as agents above the
    // full-mesh size do; every row() call is one pod-proxy GET through the API server.
    const names = Array.from({ length: 200 }, (_, i) => `n${i}`);
    const wave = names.slice(0, 50);
    function waveSource(clock: () => number) {
      const gets: { pod: string; since: number }[] = [];
      const source: RowSource = {
        nodes: async () => names.map((name) => ({ name, ready: true, expectedOverlay: 'legacy' as const })),
        agents: async () => names.map((name, i) => ({ node: name, pod: `agent-${name}`, namespace: 'cilium-migrate', ip: `10.244.${i}.5`, ready: true })),
        row: async (pod, from) => {
          gets.push({ pod: pod.pod, since: from.getTime() });
          const i = names.indexOf(pod.node);
          const t = clock();
          const peers = new Set([...Array.from({ length: 5 }, (_, k) => names[(i + k + 1) % names.length]!), ...wave]);
          peers.delete(pod.node);
          const last = new Date(t - 300).toISOString();
          return {
            schema: rowSchema, identity: { node: pod.node, pod: pod.pod, namespace: pod.namespace, ip: pod.ip, overlay: 'legacy', expectedOverlay: 'legacy', version: '0.1.0' },
            generation: 1, generatedAt: new Date(t).toISOString(), startedAt: new Date(t - 600_000).toISOString(), intervalMs: 5000, windowMs: 60_000, since: from.toISOString(),
            cells: [...peers].map((m) => ({
              peer: { node: m, pod: `agent-${m}`, ip: '10.244.0.1', overlay: 'legacy' as const }, focus: wave.includes(m),
              stats: (['icmp', 'http'] as const).map((protocol) => ({ protocol, samples: 4, successes: 4, successRatio: 1, rttP50Ms: 0.4, rttP90Ms: 0.5, rttP99Ms: 0.6, firstSampleAt: from.toISOString(), lastSampleAt: last, lastSuccessAt: last, lastFailureAt: null, lastError: null })),
            })),
          } satisfies Row;
        },
      };
      return { source, gets };
    }

    it('reads the matrix once per gate round for the whole wave: one GET per agent per round, not one per agent per node', async () => {
      let t = now;
      const { source, gets } = waveSource(() => t);
      const gate = matrixGate(source, { policy, concurrency: 32, timeoutMs: 1000, lookbackMs: 10_000, roundMs: 10_000 }, { now: () => t });
      const waveGate = gate.forWave(wave);
      const restartedAt = new Date(now - 8000);
      for (let round = 1; round <= 3; round++) {
        // Every node of the wave checks within the round, a few at the same moment, the others a little later.
        const results = await Promise.all(wave.map(async (n, k) => {
          await new Promise((r) => setTimeout(r, k % 5));
          return waveGate.check(focusNode(n), restartedAt, undefined, wave.filter((m) => m !== n));
        }));
        assert.ok(results.every((r) => r.verdict === 'PASS'), results.find((r) => r.verdict !== 'PASS')?.reasons.join('\n'));
        assert.equal(gets.length, round * names.length, `after round ${round}: ${gets.length} pod-proxy GETs (${names.length} agents)`);
        t += 10_000;
      }
      // Without sharing: 3 rounds x 50 nodes x 200 agents.
      const unshared = waveSource(() => t);
      const plain = matrixGate(unshared.source, { policy, concurrency: 32, timeoutMs: 1000, lookbackMs: 10_000 }, { now: () => t });
      await Promise.all(wave.map((n) => plain.check(focusNode(n), restartedAt, undefined, wave.filter((m) => m !== n))));
      assert.equal(unshared.gets.length, wave.length * names.length, 'a gate of its own per node reads the whole matrix per node');
    });

    it('takes the baseline once for the whole wave; a round later it reads it again', async () => {
      let t = now;
      const { source, gets } = waveSource(() => t);
      const waveGate = matrixGate(source, { policy, concurrency: 32, timeoutMs: 1000, lookbackMs: 10_000, roundMs: 10_000 }, { now: () => t }).forWave(wave);
      const results = await Promise.all(wave.map(() => waveGate.baseline()));
      assert.ok(results.every((r) => r.verdict === 'PASS'), results.find((r) => r.verdict !== 'PASS')?.reasons.join('\n'));
      assert.equal(gets.length, names.length, `one read for the ${wave.length} nodes' baselines, not one each`);
      t += 10_000;
      await waveGate.baseline();
      assert.equal(gets.length, 2 * names.length);
    });

    it('runs one read at a time: nodes back from their restarts while a read runs share the next one, counted from the latest restart', async () => {
      const t = now;
      const { source, gets } = waveSource(() => t);
      // Rows take a few milliseconds; count the reads (by their since) that have rows in flight at once.
      const inFlight = new Map<number, number>();
      let most = 0;
      const slow: RowSource = {
        ...source,
        row: async (pod, from, timeoutMs) => {
          inFlight.set(from.getTime(), (inFlight.get(from.getTime()) ?? 0) + 1);
          most = Math.max(most, inFlight.size);
          await new Promise((r) => setTimeout(r, 3));
          try {
            return await source.row(pod, from, timeoutMs);
          } finally {
            const left = inFlight.get(from.getTime())! - 1;
            if (left) inFlight.set(from.getTime(), left);
            else inFlight.delete(from.getTime());
          }
        },
      };
      const waveGate = matrixGate(slow, { policy, concurrency: 32, timeoutMs: 1000, lookbackMs: 10_000, roundMs: 10_000 }, { now: () => t }).forWave(wave);
      const first = waveGate.check(focusNode('n0'), new Date(now - 8000));
      for (let i = 0; i < 100 && gets.length === 0; i++) await new Promise((r) => setTimeout(r, 1));
      assert.ok(gets.length > 0 && gets.length < names.length, 'n0\'s read is running');
      // Nine nodes come back from their restarts one after another, each later than that read counts from.
      const later = wave.slice(1, 10).map((n, k) => waveGate.check(focusNode(n), new Date(now - 8000 + (k + 1) * 100)));
      await Promise.all([first, ...later]);
      assert.equal(most, 1, 'never two reads at once');
      assert.equal(gets.length, 2 * names.length, 'the nine share one read after n0\'s');
      assert.ok(gets.slice(names.length).every((g) => g.since === now - 8000 + 900), 'counted from the latest of their restarts');
    });

    it('never gives a node the same read twice, and never counts samples from before its own restart', async () => {
      let t = now;
      const { source, gets } = waveSource(() => t);
      const waveGate = matrixGate(source, { policy, concurrency: 32, timeoutMs: 1000, lookbackMs: 10_000, roundMs: 10_000 }, { now: () => t }).forWave(wave);
      const early = new Date(now - 8000);
      await waveGate.check(focusNode('n0'), early);
      assert.equal(gets.length, 200);
      // n0's next round, even at once: a read of its own.
      await waveGate.check(focusNode('n0'), early);
      assert.equal(gets.length, 400, 'two rounds of one node are two reads');
      // n1 restarted later than that read counted from: it reads anew, counting from its restart.
      t += 1000;
      const later = new Date(now - 2000);
      await waveGate.check(focusNode('n1'), later);
      assert.equal(gets.length, 600);
      assert.ok(gets.slice(400).every((g) => g.since === later.getTime()), 'the new read counts samples since the latest restart of the wave');
      // n2 (restarted early) shares n1's read: later evidence than its own restart only.
      await waveGate.check(focusNode('n2'), early);
      assert.equal(gets.length, 600, 'n2 shares the read n1 started');
      // A round later the shared read is too old to share.
      t += 10_000;
      await waveGate.check(focusNode('n3'), early);
      assert.equal(gets.length, 800);
      assert.ok(gets.slice(600).every((g) => g.since === later.getTime()), 'and still counts from the latest restart of the wave');
    });
  });

  it('a baseline record survives JSON (the node annotation) and is read back', () => {
    const record = { matrixBaseline: { takenAt: new Date(now).toISOString(), cells: ['a>b/icmp'], overlayMismatches: ['c'] } };
    assert.deepEqual(baselineFromRecord(JSON.parse(JSON.stringify(record))), record.matrixBaseline);
    assert.equal(baselineFromRecord({ oldUids: [] }), undefined);
  });
});

describe('connectivity --serve', () => {
  it('parses listen addresses, loopback by default', () => {
    assert.deepEqual(parseListenAddress(':8080'), { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseListenAddress('8080'), { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseListenAddress('0.0.0.0:9000'), { host: '0.0.0.0', port: 9000 });
    assert.deepEqual(parseListenAddress('[::1]:9000'), { host: '::1', port: 9000 });
    assert.throws(() => parseListenAddress('localhost'), /an address to listen on/);
  });

  it('serves the latest report as a self-reloading page and as JSON; 503 before the first read', async () => {
    let latest: ConnectivityReport | undefined;
    const server = await serveReports({ host: '127.0.0.1', port: 0 }, () => latest, 5);
    try {
      assert.equal((await fetch(server.url)).status, 503);
      const { source } = fakeSource(3);
      const matrix = assembleMatrix(await readMatrix(source, { since, concurrency: 2, timeoutMs: 1000, now: () => now }), { staleRowMs: 30_000 });
      const policy = { minSamples: 3, successThreshold: 0.95 };
      const evaluation = evaluateGate({ matrix, focus: [], policy });
      latest = connectivityReport(matrix, evaluation, evaluation.verdict, { needed: 1, passedInARow: 1 }, [], policy);
      const page = await (await fetch(server.url)).text();
      assert.match(page, /<meta http-equiv="refresh" content="5">/);
      assert.match(page, /id="verdict" class="verdict PASS"/);
      const json = (await (await fetch(`${server.url}report.json`)).json()) as ConnectivityReport;
      assert.equal(json.cells.length, 6);
      assert.equal((await fetch(`${server.url}nope`)).status, 404);
    } finally {
      await server.close();
    }
  });
});
