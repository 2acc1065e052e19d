// The matrix assembly and the gate's verdict rules, as tables over rows built in memory.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { baselineOf, diagnose, evaluateGate, GateError, roundsVerdict, type Baseline, type GatePolicy, type Verdict } from '../../lib/connectivity-gate.js';
import { assembleMatrix, overlaySummary, type AgentRead, type Matrix, type MatrixRead } from '../../lib/reachability.js';
import { ExitCode } from '../../lib/errors.js';
import { rowSchema, type CellStats, type ProbeProtocol, type Row } from '../../lib/row.js';

const T = Date.parse('2026-11-24T12:00:00Z');
const iso = (t: number) => new Date(t).toISOString();
const policy: GatePolicy = { minSamples: 3, successThreshold: 0.95 };
const protocols: ProbeProtocol[] = ['icmp', 'http', 'icmp-large'];

/** What one protocol of one cell saw: `ok` of `samples` succeeded, the last `lastAgoMs` ago. */
interface Seen {
  samples?: number;
  ok?: number;
  lastAgoMs?: number;
  /** When the first sample counted was taken (default: after `since`). */
  firstAt?: number;
}

function stats(protocol: ProbeProtocol, seen: Seen = {}): CellStats {
  const samples = seen.samples ?? 5;
  const ok = seen.ok ?? samples;
  const last = T - (seen.lastAgoMs ?? 500);
  return {
    protocol, samples, successes: ok, successRatio: samples ? ok / samples : null,
    rttP50Ms: ok ? 0.5 : null, rttP90Ms: ok ? 0.9 : null, rttP99Ms: ok ? 1.2 : null,
    firstSampleAt: samples ? iso(seen.firstAt ?? last - (samples - 1) * 1000) : null,
    lastSampleAt: samples ? iso(last) : null,
    lastSuccessAt: ok ? iso(last) : null,
    lastFailureAt: ok < samples ? iso(last) : null,
    lastError: ok < samples ? 'icmp: timeout' : null,
  };
}

interface NodeSpec {
  name: string;
  overlay: 'legacy' | 'cilium';
  ready?: boolean;
  /** false: no agent pod; 'unready': a pod that is not Ready; 'unreadable': the proxy GET failed. */
  agent?: false | 'unready' | 'unreadable';
  /** The row as served, changed by this function. */
  row?: (row: Row) => Row;
  /** The overlay the agent actually is on, when it differs. */
  actualOverlay?: 'legacy' | 'cilium';
}

/** The read of a cluster of these nodes, full mesh; `seen` overrides a cell: `src>dst/protocol`. */
function read(nodes: NodeSpec[], seen: Record<string, Seen> = {}, since = T - 10_000): MatrixRead {
  const withAgent = nodes.filter((n) => n.agent !== false);
  const agents: AgentRead[] = withAgent.map((n) => {
    const overlay = n.actualOverlay ?? n.overlay;
    let row: Row = {
      schema: rowSchema,
      identity: { node: n.name, pod: `agent-${n.name}`, namespace: 'cilium-migrate', ip: `10.${overlay === 'legacy' ? 244 : 245}.${nodes.indexOf(n)}.10`, overlay, expectedOverlay: n.overlay, version: '0.1.0' },
      generation: 1, generatedAt: iso(T), startedAt: iso(T - 60_000), intervalMs: 1000, windowMs: 30_000, since: iso(since),
      cells: withAgent.filter((p) => p !== n).map((p) => ({
        peer: { node: p.name, pod: `agent-${p.name}`, ip: '10.0.0.1', overlay: p.actualOverlay ?? p.overlay },
        focus: false,
        stats: protocols.map((proto) => stats(proto, seen[`${n.name}>${p.name}/${proto}`])),
      })),
    };
    if (n.row) row = n.row(row);
    return {
      node: n.name, pod: `agent-${n.name}`, ip: row.identity.ip, ready: n.agent !== 'unready',
      ...(n.agent === 'unreadable' ? { error: 'proxy: context deadline exceeded' } : { row }),
    };
  });
  return { nodes: nodes.map((n) => ({ name: n.name, ready: n.ready ?? true, expectedOverlay: n.overlay })), agents, since, readAt: T + 200 };
}

const matrixOf = (r: MatrixRead): Matrix => assembleMatrix(r, { staleRowMs: 30_000 });
const four: NodeSpec[] = [
  { name: 'a', overlay: 'legacy' },
  { name: 'b', overlay: 'legacy' },
  { name: 'c', overlay: 'cilium' },
  { name: 'd', overlay: 'cilium' },
];
const gate = (r: MatrixRead, focus: string[] = [], baseline?: Baseline) => evaluateGate({ matrix: matrixOf(r), focus, baseline, policy });
const failing = (r: MatrixRead, focus: string[] = [], baseline?: Baseline) => gate(r, focus, baseline).findings.filter((f) => f.severity !== 'INFO').flatMap((f) => f.subjects).sort();

describe('assembleMatrix', () => {
  it('makes one cell per ordered pair of nodes, each with its mark, and no gaps', () => {
    const m = matrixOf(read(four, { 'a>c/http': { samples: 4, ok: 2 }, 'c>a/icmp': { samples: 4, ok: 0 } }));
    assert.equal(m.cells.length, 12);
    const mark = (src: string, dst: string) => m.cells.find((c) => c.src === src && c.dst === dst)!.mark;
    assert.equal(mark('a', 'b'), 'reachable');
    assert.equal(mark('a', 'c'), 'lossy');
    assert.equal(mark('c', 'a'), 'unreachable');
    assert.deepEqual(m.nodes.map((n) => `${n.name}:${n.overlay}`), ['a:legacy', 'b:legacy', 'c:cilium', 'd:cilium']);
  });

  const cases: { name: string; nodes: NodeSpec[]; seen?: Record<string, Seen>; cell: [string, string]; why: RegExp }[] = [
    { name: 'a Ready node without an agent: unknown from it and to it', nodes: [...four.slice(0, 3), { name: 'd', overlay: 'cilium', agent: false }], cell: ['d', 'a'], why: /no agent pod on d/ },
    { name: 'to a node without an agent', nodes: [...four.slice(0, 3), { name: 'd', overlay: 'cilium', agent: false }], cell: ['a', 'd'], why: /no agent pod on d to probe/ },
    { name: 'an agent pod that is not Ready', nodes: [{ name: 'a', overlay: 'legacy', agent: 'unready' }, ...four.slice(1)], cell: ['a', 'c'], why: /not Ready/ },
    { name: 'a row the proxy could not read', nodes: [{ name: 'a', overlay: 'legacy', agent: 'unreadable' }, ...four.slice(1)], cell: ['a', 'b'], why: /unreadable: proxy: context deadline/ },
    { name: 'a stale row (generated long before the read)', nodes: [{ name: 'a', overlay: 'legacy', row: (r) => ({ ...r, generatedAt: iso(T - 120_000) }) }, ...four.slice(1)], cell: ['a', 'b'], why: /stale/ },
    { name: 'a row not limited to `since` (an older agent)', nodes: [{ name: 'a', overlay: 'legacy', row: ({ since: _drop, ...r }) => r }, ...four.slice(1)], cell: ['a', 'b'], why: /did not limit its row/ },
    { name: 'a stale cell (last sample older than two intervals)', nodes: four, seen: { 'b>c/icmp': { lastAgoMs: 5000 } }, cell: ['b', 'c'], why: /stale: last sample/ },
    { name: 'a cell without samples since the start', nodes: four, seen: { 'b>c/http': { samples: 0 } }, cell: ['b', 'c'], why: /no sample since/ },
    { name: 'a cell holding samples from before the start', nodes: four, seen: { 'b>c/icmp': { firstAt: T - 20_000 } }, cell: ['b', 'c'], why: /from before/ },
  ];
  for (const c of cases) {
    it(`marks UNKNOWN: ${c.name}`, () => {
      const m = matrixOf(read(c.nodes, c.seen));
      const cell = m.cells.find((x) => x.src === c.cell[0] && x.dst === c.cell[1]);
      assert.ok(cell, 'the cell is there, not a gap');
      const why = cell.why ?? cell.protocols.find((p) => p.mark === 'unknown')?.why ?? '';
      assert.ok(cell.mark === 'unknown' || cell.protocols.some((p) => p.mark === 'unknown'), `unknown, got ${cell.mark}`);
      assert.match(why, c.why);
    });
  }

  it('above the full-mesh size, a pair the ring leaves out gets a cell only towards the focus', () => {
    const ring: NodeSpec[] = four.map((n) => ({ ...n, row: (r: Row) => ({ ...r, cells: r.cells.filter((c) => c.peer.node !== 'a' && c.peer.node !== 'c') }) }));
    const cellsOf = (focus: string[]) => assembleMatrix(read(ring), { staleRowMs: 30_000, fullMeshUpTo: 2, focus }).cells.filter((c) => c.mark === 'unprobed').map((c) => `${c.src}>${c.dst}`).sort();
    assert.deepEqual(cellsOf([]), []);
    // Every agent should probe the focus node c; c itself probes its ring, not the whole cluster,
    // so the pair c>a it leaves out is no gap (else no focus node of a large cluster could pass).
    assert.deepEqual(cellsOf(['c']), ['a>c', 'b>c', 'd>c']);
    assert.equal(assembleMatrix(read(ring), { staleRowMs: 30_000 }).cells.filter((c) => c.mark === 'unprobed').length, 6, 'a full mesh shows every gap');
  });

  it('summarises cells by overlay pair (2x2)', () => {
    const s = overlaySummary(matrixOf(read(four, { 'a>c/icmp': { samples: 4, ok: 0 }, 'd>c/http': { samples: 4, ok: 3 } })));
    assert.deepEqual(s['legacy->legacy'], { reachable: 2, lossy: 0, unreachable: 0, unknown: 0, total: 2 });
    assert.deepEqual(s['legacy->cilium'], { reachable: 3, lossy: 0, unreachable: 1, unknown: 0, total: 4 });
    assert.deepEqual(s['cilium->legacy'], { reachable: 4, lossy: 0, unreachable: 0, unknown: 0, total: 4 });
    assert.deepEqual(s['cilium->cilium'], { reachable: 1, lossy: 1, unreachable: 0, unknown: 0, total: 2 });
  });
});

describe('evaluateGate', () => {
  const baselineWith = (cells: string[], overlayMismatches: string[] = []): Baseline => ({ takenAt: iso(T - 600_000), cells, overlayMismatches });
  const table: { name: string; nodes?: NodeSpec[]; seen?: Record<string, Seen>; focus?: string[]; baseline?: Baseline; verdict: Verdict; subjects?: string[] }[] = [
    { name: 'every cell reachable', verdict: 'PASS' },
    { name: 'every cell reachable, focus on c with enough samples', focus: ['c'], verdict: 'PASS' },
    { name: 'a lossy cell above the threshold passes', seen: { 'a>b/icmp': { samples: 40, ok: 39, firstAt: T - 9000 } }, verdict: 'PASS' },
    { name: 'a Ready node without an agent', nodes: [...four.slice(0, 3), { name: 'd', overlay: 'cilium', agent: false }], verdict: 'UNKNOWN', subjects: ['d'] },
    { name: 'a NotReady node without an agent is not required', nodes: [...four.slice(0, 3), { name: 'd', overlay: 'cilium', agent: false, ready: false }], verdict: 'PASS' },
    { name: 'a stale row', nodes: [{ name: 'a', overlay: 'legacy', row: (r) => ({ ...r, generatedAt: iso(T - 120_000) }) }, ...four.slice(1)], verdict: 'UNKNOWN', subjects: ['a'] },
    { name: 'a stale cell outside the focus', seen: { 'a>b/http': { lastAgoMs: 9000 } }, verdict: 'UNKNOWN', subjects: ['a>b/http'] },
    { name: 'focus cells with fewer than M samples since the step started', focus: ['c'], seen: { 'a>c/icmp': { samples: 2 }, 'c>d/http': { samples: 1 } }, verdict: 'UNKNOWN', subjects: ['a>c/icmp', 'c>d/http'] },
    { name: 'a focus cell below the threshold', focus: ['c'], seen: { 'c>a/http': { samples: 10, ok: 9 } }, verdict: 'FAIL', subjects: ['c>a/http'] },
    { name: 'a failing cell without a baseline', seen: { 'a>b/icmp': { samples: 5, ok: 0 } }, verdict: 'FAIL', subjects: ['a>b/icmp'] },
    { name: 'baseline failures outside the focus are tolerated', focus: ['c'], seen: { 'a>b/icmp': { samples: 5, ok: 0 }, 'b>d': {} }, baseline: baselineWith(['a>b/icmp']), verdict: 'PASS' },
    { name: 'a regression outside the focus', focus: ['c'], seen: { 'a>d/http': { samples: 5, ok: 1 } }, baseline: baselineWith(['a>b/icmp']), verdict: 'FAIL', subjects: ['a>d/http'] },
    { name: 'a baseline failure in the focus is not tolerated', focus: ['c'], seen: { 'a>c/icmp': { samples: 5, ok: 0 } }, baseline: baselineWith(['a>c/icmp']), verdict: 'FAIL', subjects: ['a>c/icmp'] },
    { name: 'FAIL wins over UNKNOWN', focus: ['c'], seen: { 'a>c/icmp': { samples: 5, ok: 0 }, 'b>c/http': { samples: 1 } }, verdict: 'FAIL', subjects: ['a>c/icmp', 'b>c/http'] },
    { name: 'the focus agent on the wrong overlay', focus: ['c'], nodes: [...four.slice(0, 2), { name: 'c', overlay: 'cilium', actualOverlay: 'legacy' }, four[3]!], verdict: 'FAIL', subjects: ['c'] },
    { name: 'a wrong overlay outside the focus already in the baseline', focus: ['c'], nodes: [{ name: 'a', overlay: 'cilium', actualOverlay: 'legacy' }, ...four.slice(1)], baseline: baselineWith([], ['a']), verdict: 'PASS' },
    { name: 'a focus node whose agent is not probed by a peer yet', focus: ['c'], nodes: [{ name: 'a', overlay: 'legacy', row: (r) => ({ ...r, cells: r.cells.filter((c) => c.peer.node !== 'c') }) }, ...four.slice(1)], verdict: 'UNKNOWN', subjects: ['a>c'] },
    { name: 'an unprobed pair outside the focus (ring selection) is not required', nodes: [{ name: 'a', overlay: 'legacy', row: (r) => ({ ...r, cells: r.cells.filter((c) => c.peer.node !== 'b') }) }, ...four.slice(1)], verdict: 'PASS' },
  ];
  for (const t of table) {
    it(`${t.verdict}: ${t.name}`, () => {
      const r = read(t.nodes ?? four, t.seen);
      const result = gate(r, t.focus, t.baseline);
      assert.equal(result.verdict, t.verdict, JSON.stringify(result.findings));
      if (t.subjects) assert.deepEqual(failing(r, t.focus, t.baseline), [...t.subjects].sort());
    });
  }

  it('leaves the cells of the other nodes of a wave to their own gates', () => {
    const r = read(four, { 'a>d/icmp': { ok: 0 }, 'd>b/http': { ok: 0 } });
    assert.equal(gate(r, ['c'], baselineWith([])).verdict, 'FAIL');
    assert.equal(evaluateGate({ matrix: matrixOf(r), focus: ['c'], baseline: baselineWith([]), policy, exclude: ['d'] }).verdict, 'PASS');
  });

  it('a gate started right after a change does not pass on samples taken before the change', () => {
    // Before the change everything passed; the step starts at T - 300 ms.
    const start = T - 300;
    // An agent that filters by `since` has almost nothing yet: too few samples, UNKNOWN.
    const filtered = read(four, Object.fromEntries(['a', 'b', 'd'].flatMap((s) => protocols.map((p) => [`${s}>c/${p}`, { samples: 0 }]))), start);
    assert.equal(gate(filtered, ['c']).verdict, 'UNKNOWN');
    // An agent that serves its whole window (samples from before the start) is not believed either.
    const unfiltered = read(four, {}, start);
    const result = gate(unfiltered, ['c']);
    assert.equal(result.verdict, 'UNKNOWN');
    assert.ok(result.findings.some((f) => /from before/.test(f.message)));
    // Once M samples after the change exist, it passes.
    const everyCell = Object.fromEntries(four.flatMap((s) => four.filter((d) => d !== s).flatMap((d) => protocols.map((p) => [`${s.name}>${d.name}/${p}`, { samples: 3, firstAt: start + 100 }]))));
    const later = read(four, everyCell, start);
    assert.equal(gate(later, ['c']).verdict, 'PASS');
  });

  it('records what fails as the baseline, and that baseline tolerates it later', () => {
    const r = read(four, { 'a>b/icmp': { samples: 5, ok: 0 } });
    const m = matrixOf(r);
    const baseline = baselineOf(evaluateGate({ matrix: m, focus: [], policy }), m, new Date(T));
    assert.deepEqual(baseline.cells, ['a>b/icmp']);
    assert.equal(gate(r, ['c'], baseline).verdict, 'PASS');
  });
});

describe('GateError (the one error of a gate that did not pass)', () => {
  it('exits 8 for FAIL and 9 for UNKNOWN', () => {
    assert.equal(new GateError('FAIL', 'x').exitCode, ExitCode.gateFail);
    assert.equal(new GateError('UNKNOWN', 'x').exitCode, ExitCode.gateUnknown);
  });
  it('names what did not pass, the verdict, and one indented line per reason', () => {
    const e = GateError.of('gate for w1', { verdict: 'FAIL', reasons: ['a>b/icmp: 0%', 'hint'] }, 'rerun');
    assert.equal(e.message, 'gate for w1: FAIL\n  a>b/icmp: 0%\n  hint');
    assert.equal(e.hint, 'rerun');
  });
});

describe('roundsVerdict', () => {
  const table: { history: Verdict[]; rounds: number; verdict: Verdict; streak: number }[] = [
    { history: [], rounds: 2, verdict: 'UNKNOWN', streak: 0 },
    { history: ['PASS'], rounds: 2, verdict: 'UNKNOWN', streak: 1 },
    { history: ['PASS', 'PASS'], rounds: 2, verdict: 'PASS', streak: 2 },
    { history: ['PASS', 'FAIL', 'PASS'], rounds: 2, verdict: 'UNKNOWN', streak: 1 },
    { history: ['PASS', 'PASS', 'FAIL'], rounds: 2, verdict: 'FAIL', streak: 0 },
    { history: ['UNKNOWN'], rounds: 1, verdict: 'UNKNOWN', streak: 0 },
    { history: ['FAIL', 'PASS'], rounds: 1, verdict: 'PASS', streak: 1 },
  ];
  for (const t of table) {
    it(`${t.history.join(',') || 'nothing'} with N=${t.rounds}: ${t.verdict}`, () => assert.deepEqual(roundsVerdict(t.history, t.rounds), { verdict: t.verdict, streak: t.streak }));
  }
});

describe('diagnose', () => {
  const causes = (r: MatrixRead) => diagnose(matrixOf(r), policy).map((h) => `${h.cause}:${h.nodes.join(',')}`);
  const allOf = (node: string, others: string[]) =>
    Object.fromEntries(others.flatMap((o) => ['icmp', 'http'].flatMap((p) => [[`${node}>${o}/${p}`, { ok: 0 }], [`${o}>${node}/${p}`, { ok: 0 }]])));

  it('every cell to and from one node failing: its tunnel port', () => {
    const hints = diagnose(matrixOf(read(four, allOf('c', ['a', 'b', 'd']))), policy);
    assert.deepEqual(hints.map((h) => `${h.cause}:${h.nodes.join(',')}`), ['tunnel-port:c']);
    assert.match(hints[0]!.message, /UDP 8473 is likely blocked on c/);
  });
  it('the same when that node\'s row cannot be read either', () => {
    const nodes: NodeSpec[] = [...four.slice(0, 2), { name: 'c', overlay: 'cilium', agent: 'unreadable' }, four[3]!];
    assert.deepEqual(causes(read(nodes, allOf('c', ['a', 'b', 'd']))), ['tunnel-port:c']);
  });
  it('a legacy node\'s tunnel: UDP 8472', () => {
    assert.match(diagnose(matrixOf(read(four, allOf('a', ['b', 'c', 'd']))), policy)[0]!.message, /UDP 8472/);
  });
  it('a Calico IP-in-IP node: names IP protocol 4, not a UDP port it does not have', () => {
    const message = diagnose(matrixOf(read(four, allOf('a', ['b', 'c', 'd']))), policy, { legacy: [{ protocol: 'ipip' }], cilium: { protocol: 'vxlan', port: 8473 } })[0]!.message;
    assert.match(message, /the legacy overlay's IP protocol 4 \(IP-in-IP\) is likely blocked on a/);
    assert.doesNotMatch(message, /8472/);
  });
  it('a Calico VXLAN node on Felix\'s port, and Cilium on the port cilium-config names', () => {
    const tunnels = { legacy: [{ protocol: 'vxlan' as const, port: 4789 }], cilium: { protocol: 'vxlan' as const, port: 8479 } };
    assert.match(diagnose(matrixOf(read(four, allOf('a', ['b', 'c', 'd']))), policy, tunnels)[0]!.message, /legacy tunnel port UDP 4789/);
    assert.match(diagnose(matrixOf(read(four, allOf('c', ['a', 'b', 'd']))), policy, tunnels)[0]!.message, /cilium tunnel port UDP 8479/);
  });
  it('an AWS-CNI node (no tunnel): its routed traffic', () => {
    assert.match(diagnose(matrixOf(read(four, allOf('a', ['b', 'c', 'd']))), policy, { legacy: [{ protocol: 'none' }] })[0]!.message, /legacy overlay's routed traffic \(it has no tunnel\).*routes, security groups/);
  });
  it('evaluateGate passes the tunnels to its hints', () => {
    const e = evaluateGate({ matrix: matrixOf(read(four, allOf('a', ['b', 'c', 'd']))), focus: [], policy, tunnels: { legacy: [{ protocol: 'ipip' }] } });
    assert.match(e.hints[0]!.message, /IP-in-IP/);
  });
  it('large packets failing while small ones pass: MTU', () => {
    assert.deepEqual(causes(read(four, { 'd>c/icmp-large': { ok: 0 } })), ['mtu:c,d']);
  });
  it('ICMP passing and HTTP failing: policy', () => {
    assert.deepEqual(causes(read(four, { 'a>c/http': { ok: 0 }, 'b>c/http': { ok: 0 } })), ['policy:a,b,c']);
  });
  it('ICMP passing and HTTP failing to a node whose row cannot be read: the agent is not running', () => {
    const nodes: NodeSpec[] = [...four.slice(0, 2), { name: 'c', overlay: 'cilium', agent: 'unreadable' }, four[3]!];
    assert.deepEqual(causes(read(nodes, { 'a>c/http': { ok: 0 }, 'b>c/http': { ok: 0 }, 'd>c/http': { ok: 0 } })), ['agent-not-running:c']);
  });
  it('a Ready node without an agent pod', () => {
    assert.deepEqual(causes(read([...four.slice(0, 3), { name: 'd', overlay: 'cilium', agent: false }])), ['agent-not-running:d']);
  });
  it('an agent on the other overlay than its node', () => {
    assert.deepEqual(causes(read([...four.slice(0, 3), { name: 'd', overlay: 'cilium', actualOverlay: 'legacy' }])), ['wrong-overlay:d']);
  });
  it('nothing to say about a healthy matrix', () => assert.deepEqual(causes(read(four)), []));
});
