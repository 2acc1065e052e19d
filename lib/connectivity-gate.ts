// The connectivity gate (DESIGN.md "Gate semantics"): a pure verdict over the matrix. PASS needs an
// agent reporting for every Ready node; for every cell involving the focus node at least M samples
// since the step started, each meeting the success threshold; no cell outside the focus worse than
// in the baseline; and, over rounds, N passes in a row. Missing or stale evidence is UNKNOWN, which
// is not PASS. Findings name cells; hints name the likely cause.
import { CliError, ExitCode } from './errors.js';
import { cellKey, type Matrix, type MatrixCell, type MatrixNode, type ProtocolCell } from './reachability.js';
import { blockedTunnelText, seedTunnels, type OverlayTunnels } from './tunnel.js';

export type Verdict = 'PASS' | 'FAIL' | 'UNKNOWN';

export interface GatePolicy {
  /** M: samples since the step started that each cell of the focus node needs. */
  minSamples: number;
  /** A cell passes when its success ratio is at least this, per cell and protocol. */
  successThreshold: number;
}

/** What was already broken before the migration touched anything: cell keys and nodes. */
export interface Baseline {
  takenAt: string;
  /** `src>dst/protocol` keys, or `src>dst` for a cell without protocol data, not passing then. */
  cells: string[];
  /** Nodes whose agent was on the wrong overlay then. */
  overlayMismatches: string[];
}

export interface GateInput {
  matrix: Matrix;
  /** Nodes in focus (the node just migrated); empty for a plain look at the cluster. */
  focus: string[];
  baseline?: Baseline | undefined;
  policy: GatePolicy;
  /** Nodes being migrated alongside the focus (a wave): their cells are left to their own gates. */
  exclude?: string[] | undefined;
  /** The overlays' tunnels, for the hint that names a blocked one (default: the seed's). */
  tunnels?: OverlayTunnels | undefined;
}

export type Rule = 'agents' | 'overlay' | 'samples' | 'threshold' | 'regression' | 'unknown-cell' | 'tolerated';

export interface Finding {
  rule: Rule;
  /** FAIL or UNKNOWN count against the verdict; INFO (tolerated baseline failures) does not. */
  severity: 'FAIL' | 'UNKNOWN' | 'INFO';
  /** Cell keys (`src>dst/protocol`) or node names the finding is about. */
  subjects: string[];
  message: string;
}

export type Cause = 'tunnel-port' | 'mtu' | 'policy' | 'agent-not-running' | 'wrong-overlay';

export interface Hint {
  cause: Cause;
  nodes: string[];
  message: string;
}

export interface GateEvaluation {
  verdict: Verdict;
  findings: Finding[];
  hints: Hint[];
  /** Cells (with protocol) judged. */
  checked: number;
}

/** Whether one protocol's result meets the policy. */
const passes = (p: ProtocolCell, policy: GatePolicy) => p.mark !== 'unknown' && p.successRatio !== null && p.successRatio >= policy.successThreshold;
const ratioText = (p: ProtocolCell) => (p.successRatio === null ? 'no samples' : `${Math.round(p.successRatio * 100)}% of ${p.samples}`);

/** The gate's verdict on one matrix. */
export function evaluateGate(input: GateInput): GateEvaluation {
  const { baseline, policy } = input;
  const excluded = new Set((input.exclude ?? []).filter((n) => !input.focus.includes(n)));
  const focus = input.focus;
  const matrix: Matrix = excluded.size
    ? { ...input.matrix, nodes: input.matrix.nodes.filter((n) => !excluded.has(n.name)), cells: input.matrix.cells.filter((c) => !excluded.has(c.src) && !excluded.has(c.dst)) }
    : input.matrix;
  const inFocus = new Set(focus);
  const findings: Finding[] = [];
  const add = (rule: Rule, severity: Finding['severity'], subjects: string[], message: string) => findings.push({ rule, severity, subjects, message });
  const tolerated = new Set(baseline?.cells ?? []);
  let checked = 0;
  const rowMissing = new Set(matrix.nodes.filter((n) => n.rowProblem).map((n) => n.name));
  const agentMissing = new Set(matrix.nodes.filter((n) => !n.agent).map((n) => n.name));

  for (const n of matrix.nodes) {
    if (n.rowProblem && (n.ready || inFocus.has(n.name))) add('agents', 'UNKNOWN', [n.name], `node ${n.name}: ${n.rowProblem}`);
    if (n.overlayMismatch) {
      if (!inFocus.has(n.name) && baseline?.overlayMismatches.includes(n.name)) add('tolerated', 'INFO', [n.name], `node ${n.name}: ${n.overlayMismatch} (already so in the baseline)`);
      else add('overlay', 'FAIL', [n.name], `node ${n.name}: ${n.overlayMismatch}`);
    }
  }
  for (const f of focus) if (!matrix.nodes.some((n) => n.name === f)) add('agents', 'UNKNOWN', [f], `focus node ${f} is not Ready and has no agent`);

  for (const cell of matrix.cells) {
    const focused = inFocus.has(cell.src) || inFocus.has(cell.dst);
    // A source whose row is missing already has its finding; its cells add nothing new.
    if (cell.protocols.length === 0) {
      if (cell.mark === 'unprobed' && !focused) continue;
      const key = cellKey(cell.src, cell.dst);
      checked++;
      if (!focused && tolerated.has(key)) add('tolerated', 'INFO', [key], `${key}: ${cell.why ?? cell.mark} (already so in the baseline)`);
      else if (cell.mark === 'unprobed') add('samples', 'UNKNOWN', [key], `${key}: not probed (${cell.why}); the agents probe every focus node once they see its migration phase`);
      // A source without a row, or a destination without an agent, has its finding on the node.
      else if (!rowMissing.has(cell.src) && !agentMissing.has(cell.dst)) add('unknown-cell', 'UNKNOWN', [key], `${key}: unknown: ${cell.why ?? 'no data'}`);
      continue;
    }
    // One finding per cell and rule, naming the protocols: `a>b: below 95% success: icmp 0% of 4, http 0% of 4`.
    const groups = new Map<string, { rule: Rule; severity: Finding['severity']; phrase: string; keys: string[]; parts: string[]; errors: Set<string> }>();
    const note = (rule: Rule, severity: Finding['severity'], phrase: string, p: ProtocolCell, part: string) => {
      const id = `${rule}|${severity}|${phrase}`;
      const g = groups.get(id) ?? { rule, severity, phrase, keys: [], parts: [], errors: new Set<string>() };
      groups.set(id, g);
      g.keys.push(cellKey(cell.src, cell.dst, p.protocol));
      g.parts.push(`${p.protocol} ${part}`);
      if (p.lastError && severity === 'FAIL') g.errors.add(p.lastError);
    };
    const below = `below ${policy.successThreshold * 100}% success`;
    for (const p of cell.protocols) {
      checked++;
      const key = cellKey(cell.src, cell.dst, p.protocol);
      if (focused) {
        if (p.mark === 'unknown') note('samples', 'UNKNOWN', 'unknown', p, `(${p.why})`);
        else if (!passes(p, policy)) note('threshold', 'FAIL', `${below} since the step started`, p, ratioText(p));
        else if (p.samples < policy.minSamples) note('samples', 'UNKNOWN', 'too few samples since the step started', p, `${p.samples} of ${policy.minSamples}`);
        continue;
      }
      if (passes(p, policy)) continue;
      if (tolerated.has(key)) note('tolerated', 'INFO', 'failing in the baseline already', p, p.mark === 'unknown' ? `unknown (${p.why})` : ratioText(p));
      else if (p.mark === 'unknown') note('unknown-cell', 'UNKNOWN', 'unknown', p, `(${p.why})`);
      else if (baseline) note('regression', 'FAIL', `${below}, passing in the baseline`, p, ratioText(p));
      else note('threshold', 'FAIL', below, p, ratioText(p));
    }
    for (const g of groups.values()) {
      add(g.rule, g.severity, g.keys, `${cellKey(cell.src, cell.dst)}: ${g.phrase}: ${g.parts.join(', ')}${g.errors.size ? ` (last error: ${[...g.errors].join('; ')})` : ''}`);
    }
  }
  const verdict: Verdict = findings.some((f) => f.severity === 'FAIL') ? 'FAIL' : findings.some((f) => f.severity === 'UNKNOWN') ? 'UNKNOWN' : 'PASS';
  return { verdict, findings, hints: diagnose(matrix, policy, input.tunnels), checked };
}



/**
 * A gate that did not pass, whoever asked (`connectivity`, a step of the engine): exit 8 for FAIL,
 * 9 for UNKNOWN (missing or stale evidence).
 */
export class GateError extends CliError {
  constructor(readonly verdict: Verdict, message: string, hint?: string) {
    super(message, verdict === 'UNKNOWN' ? ExitCode.gateUnknown : ExitCode.gateFail, hint);
  }

  /** `what` (the gate of a node, its verify) did not pass: the verdict, then one indented line per reason. */
  static of(what: string, result: { verdict: Verdict; reasons: string[] }, hint?: string): GateError {
    return new GateError(result.verdict, `${what}: ${result.verdict}\n${result.reasons.map((r) => `  ${r}`).join('\n')}`, hint);
  }
}

/** The combined verdict of consecutive rounds: PASS only when the last `rounds` all passed (the one rounds rule). */
export function roundsVerdict(history: Verdict[], rounds: number): { verdict: Verdict; streak: number } {
  let streak = 0;
  for (let i = history.length - 1; i >= 0 && history[i] === 'PASS'; i--) streak++;
  if (streak >= rounds) return { verdict: 'PASS', streak };
  const last = history.at(-1);
  // Passing so far but not long enough yet: not decided.
  return { verdict: !last || last === 'PASS' ? 'UNKNOWN' : last, streak };
}

/** The baseline an evaluation implies: every cell and node not passing now. */
export function baselineOf(evaluation: GateEvaluation, matrix: Matrix, takenAt: Date): Baseline {
  const cells = new Set<string>();
  for (const f of evaluation.findings) if (f.rule !== 'agents' && f.rule !== 'overlay') for (const s of f.subjects) cells.add(s);
  // Cells of a source without a row are not listed one by one above: record them too.
  for (const c of matrix.cells) if (c.protocols.length === 0 && c.mark === 'unknown') cells.add(cellKey(c.src, c.dst));
  return { takenAt: takenAt.toISOString(), cells: [...cells].sort(), overlayMismatches: matrix.nodes.filter((n) => n.overlayMismatch).map((n) => n.name) };
}

/** Likely causes of the failures, from their pattern across the matrix. */
export function diagnose(matrix: Matrix, policy: GatePolicy, tunnels: OverlayTunnels = {}): Hint[] {
  const hints: Hint[] = [];
  const nodeBy = new Map(matrix.nodes.map((n) => [n.name, n]));
  const small = (c: MatrixCell) => c.protocols.filter((p) => p.protocol !== 'icmp-large');
  // `fail`: everything known about the cell fails (a dead path); `mixed`: some protocols pass.
  const state = (c: MatrixCell): 'pass' | 'fail' | 'mixed' | 'unknown' => {
    const known = small(c).filter((p) => p.mark !== 'unknown');
    if (known.length === 0) return 'unknown';
    const ok = known.filter((p) => passes(p, policy)).length;
    return ok === known.length ? 'pass' : ok === 0 ? 'fail' : 'mixed';
  };
  const judged = matrix.cells.filter((c) => c.mark !== 'unprobed');
  const explained = new Set<MatrixCell>();
  const states = new Map(judged.map((c) => [c, state(c)]));
  const byNode = new Map<string, MatrixCell[]>();
  for (const c of judged) {
    for (const n of [c.src, c.dst]) {
      const list = byNode.get(n);
      if (list) list.push(c);
      else byNode.set(n, [c]);
    }
  }
  const passingTotal = judged.filter((c) => states.get(c) === 'pass').length;

  // Tunnel port: every cell to and from one node fails (or cannot be read), while elsewhere cells pass.
  for (const n of matrix.nodes) {
    if (!n.agent || !n.agent.ready) continue;
    const mine = byNode.get(n.name) ?? [];
    const mineStates = mine.map((c) => states.get(c)!);
    // No cell of this node passes, so every passing cell is elsewhere.
    if (mineStates.includes('fail') && !mineStates.includes('pass') && !mineStates.includes('mixed') && passingTotal > 0) {
      mine.forEach((c) => explained.add(c));
      const own = n.overlay === 'legacy' ? tunnels.legacy ?? seedTunnels.legacy : [tunnels.cilium ?? seedTunnels.cilium];
      const { what, allow } = blockedTunnelText(n.overlay, own);
      hints.push({
        cause: 'tunnel-port',
        nodes: [n.name],
        message: `every cell to and from ${n.name} (its agent is on ${n.overlay}) fails while other nodes reach each other: ${what} is likely blocked on ${n.name} (host firewall, security group); check that ${allow} is allowed between all nodes`,
      });
    }
  }

  for (const n of matrix.nodes) {
    if (n.ready && (!n.agent || !n.agent.ready)) {
      hints.push({ cause: 'agent-not-running', nodes: [n.name], message: `no Ready probe agent on ${n.name}: check the agent DaemonSet (kubectl -n NAMESPACE get pods -o wide --field-selector spec.nodeName=${n.name}); tolerations or a full node keep it off` });
    }
    if (n.overlayMismatch) {
      hints.push({ cause: 'wrong-overlay', nodes: [n.name], message: `${n.overlayMismatch}: a pod started before the node's switch keeps its old address; restart it (or check the node's CNI configuration if new pods land there too)` });
    }
  }

  const mtu: string[] = [];
  const policyBlocked: string[] = [];
  const agentDown = new Set<string>();
  for (const c of judged) {
    if (explained.has(c)) continue;
    const by = new Map(c.protocols.map((p) => [p.protocol, p]));
    const icmp = by.get('icmp');
    const http = by.get('http');
    const large = by.get('icmp-large');
    const ok = (p: ProtocolCell | undefined) => p !== undefined && passes(p, policy);
    const bad = (p: ProtocolCell | undefined) => p !== undefined && p.mark !== 'unknown' && !passes(p, policy);
    if (ok(icmp) && ok(http) && bad(large)) mtu.push(cellKey(c.src, c.dst));
    if (ok(icmp) && bad(http)) {
      if (nodeBy.get(c.dst)?.rowProblem) agentDown.add(c.dst);
      else policyBlocked.push(cellKey(c.src, c.dst));
    }
  }
  if (mtu.length) {
    hints.push({ cause: 'mtu', nodes: nodesOf(mtu), message: `large packets fail while small ones pass on ${mtu.join(', ')}: an MTU mismatch; the overlay MTU must leave room for the VXLAN header (underlay MTU - 50) on every node` });
  }
  if (policyBlocked.length) {
    hints.push({ cause: 'policy', nodes: nodesOf(policyBlocked), message: `ICMP passes but HTTP fails on ${policyBlocked.join(', ')}: a NetworkPolicy (or host firewall) blocks TCP to the agents; allow the agent port between agent pods` });
  }
  for (const node of agentDown) {
    hints.push({ cause: 'agent-not-running', nodes: [node], message: `the pod on ${node} answers ICMP but not HTTP and its row cannot be read: the agent process there is not running (check its logs and restarts)` });
  }
  return hints;
}

function nodesOf(keys: string[]): string[] {
  return [...new Set(keys.flatMap((k) => k.split('/')[0]!.split('>')))].sort();
}

/** The findings that count against the verdict, as lines for people (GateResult reasons). */
export function reasonLines(evaluation: GateEvaluation): string[] {
  const lines = evaluation.findings.filter((f) => f.severity !== 'INFO').map((f) => `${f.severity}: ${f.message}`);
  for (const h of evaluation.hints) lines.push(`hint (${h.cause}): ${h.message}`);
  if (lines.length === 0) lines.push(`all ${evaluation.checked} cells checked pass`);
  const tolerated = evaluation.findings.filter((f) => f.severity === 'INFO').flatMap((f) => f.subjects);
  if (tolerated.length) lines.push(`tolerated, failing in the baseline already: ${tolerated.join(', ')}`);
  return lines;
}

/** Nodes of the matrix by overlay, legacy first, each sorted. */
export function nodesByOverlay(nodes: MatrixNode[]): MatrixNode[] {
  const rank = (n: MatrixNode) => (n.overlay === 'legacy' ? 0 : 1);
  return [...nodes].sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
}
