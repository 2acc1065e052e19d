// The connectivity report and its two human views: the terminal heatmap (marks per cell, nodes
// grouped by overlay, the 2x2 summary, failing cells with hints) and a self-contained HTML page.
import { styleText } from 'node:util';
import { nodesByOverlay, type Finding, type GateEvaluation, type GatePolicy, type Hint, type Verdict } from '../../lib/connectivity-gate.js';
import { overlayPairs, overlaySummary, type CellMark, type Matrix, type MatrixCell, type MatrixNode, type MarkCounts, type OverlayPair, type ProtocolCell } from '../../lib/reachability.js';
import { table } from '../table.js';

/** What `connectivity -o json|yaml` prints, and what both views draw. */
export interface ConnectivityReport {
  verdict: Verdict;
  rounds: { needed: number; passedInARow: number };
  since: string;
  readAt: string;
  focus: string[];
  policy: GatePolicy;
  summary: Record<OverlayPair, MarkCounts>;
  nodes: MatrixNode[];
  cells: MatrixCell[];
  findings: Finding[];
  hints: Hint[];
}

export function connectivityReport(matrix: Matrix, evaluation: GateEvaluation, verdict: Verdict, rounds: ConnectivityReport['rounds'], focus: string[], policy: GatePolicy): ConnectivityReport {
  return {
    verdict,
    rounds,
    since: matrix.since,
    readAt: matrix.readAt,
    focus,
    policy,
    summary: overlaySummary(matrix),
    nodes: nodesByOverlay(matrix.nodes),
    cells: matrix.cells,
    findings: evaluation.findings,
    hints: evaluation.hints,
  };
}

export const markSymbol: Record<CellMark, string> = { reachable: '+', lossy: '~', unreachable: 'x', unknown: '?', unprobed: '.' };
type Color = Parameters<typeof styleText>[0];
const markColor: Record<CellMark, Color> = { reachable: 'green', lossy: 'yellow', unreachable: 'red', unknown: 'magenta', unprobed: 'gray' };
const verdictColor: Record<Verdict, Color> = { PASS: 'green', FAIL: 'red', UNKNOWN: 'magenta' };

const pct = (r: number | null) => (r === null ? '-' : `${Math.round(r * 100)}%`);
const ms = (v: number | null) => (v === null ? '-' : `${v < 10 ? v.toFixed(1) : Math.round(v)}ms`);
const protoText = (p: ProtocolCell | undefined) => (!p ? '-' : p.mark === 'unknown' ? '?' : `${pct(p.successRatio)} ${ms(p.rttP50Ms)}`);

/** The terminal view; `colour` only when writing to a terminal. */
export function terminalView(r: ConnectivityReport, wide: boolean, colour: boolean, maxGridNodes: number): string {
  // The caller decides (Io.isTTY); styleText must not second-guess it from process.stdout.
  const paint = (c: Color, text: string) => (colour ? styleText(c, text, { validateStream: false }) : text);
  const out: string[] = [];
  out.push(`Connectivity: ${paint(verdictColor[r.verdict], r.verdict)}   ${r.nodes.length} nodes, evidence since ${r.since}${r.focus.length ? `, focus ${r.focus.join(', ')}` : ''}${r.rounds.needed > 1 ? `, ${r.rounds.passedInARow}/${r.rounds.needed} passes in a row` : ''}`);
  out.push('');

  if (r.nodes.length <= maxGridNodes) {
    const cellAt = new Map(r.cells.map((c) => [`${c.src}>${c.dst}`, c]));
    const width = String(r.nodes.length).length + 1;
    const nameWidth = Math.max(...r.nodes.map((n) => n.name.length), 4);
    const legacyCount = r.nodes.filter((n) => n.overlay === 'legacy').length;
    const head = (i: number) => String(i).padStart(width);
    const sep = (i: number) => (i === legacyCount && legacyCount > 0 && legacyCount < r.nodes.length ? ' |' : '');
    out.push(`${''.padEnd(nameWidth + 12)}${r.nodes.map((n, i) => head(i + 1) + sep(i + 1)).join('')}   (destination)`);
    r.nodes.forEach((src, i) => {
      const marks = r.nodes.map((dst, j) => {
        const c = cellAt.get(`${src.name}>${dst.name}`);
        const m = src === dst ? ' '.repeat(width - 1) + '-' : ' '.repeat(width - 1) + paint(markColor[c?.mark ?? 'unknown'], markSymbol[c?.mark ?? 'unknown']);
        return m + sep(j + 1);
      });
      const label = `${head(i + 1)} ${src.name.padEnd(nameWidth)} ${src.overlay.padEnd(6)}`;
      out.push(`${label}  ${marks.join('')}${src.rowProblem ? `   ${paint('magenta', `(${src.rowProblem})`)}` : ''}`);
      if (i + 1 === legacyCount && legacyCount < r.nodes.length) out.push(`${''.padEnd(nameWidth + 12)}${'-'.repeat(r.nodes.length * width + 2)}`);
    });
    out.push(`legend: ${(['reachable', 'lossy', 'unreachable', 'unknown', 'unprobed'] as CellMark[]).map((m) => `${paint(markColor[m], markSymbol[m])} ${m}`).join('  ')}   (row: source)`);
  } else {
    out.push(`(${r.nodes.length} nodes: the grid is shown up to ${maxGridNodes}; see the summary, -o wide, --html or -o json)`);
  }
  out.push('');
  out.push(table(['OVERLAYS (SRC->DST)', 'CELLS', 'REACHABLE', 'LOSSY', 'UNREACHABLE', 'UNKNOWN'], overlayPairs.map((p) => {
    const s = r.summary[p];
    return [p, String(s.total), String(s.reachable), String(s.lossy), String(s.unreachable), String(s.unknown)];
  })));

  if (wide) {
    out.push('');
    const rows = r.cells.filter((c) => c.mark !== 'unprobed').map((c) => {
      const by = new Map(c.protocols.map((p) => [p.protocol, p]));
      return [c.src, c.dst, `${c.srcOverlay}->${c.dstOverlay}`, c.mark, protoText(by.get('icmp')), protoText(by.get('http')), protoText(by.get('icmp-large')), ms(Math.max(...c.protocols.map((p) => p.rttP99Ms ?? 0)) || null), c.why ?? ''];
    });
    out.push(table(['SRC', 'DST', 'OVERLAYS', 'MARK', 'ICMP', 'HTTP', 'LARGE', 'RTT P99', 'WHY'], rows));
  }

  const problems = r.findings.filter((f) => f.severity !== 'INFO');
  const tolerated = r.findings.filter((f) => f.severity === 'INFO');
  if (problems.length) {
    out.push('');
    out.push('Failing cells:');
    for (const f of problems) out.push(`  ${paint(f.severity === 'FAIL' ? 'red' : 'magenta', f.severity)} ${f.message}`);
  }
  if (tolerated.length) {
    out.push('');
    out.push('Tolerated (failing in the baseline already):');
    for (const f of tolerated) out.push(`  ${f.message}`);
  }
  if (r.hints.length) {
    out.push('');
    out.push('Likely causes:');
    for (const h of r.hints) out.push(`  ${paint('yellow', h.cause)}: ${h.message}`);
  }
  return out.join('\n') + '\n';
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A self-contained page (no external assets): the heatmap, the 2x2 summary, failing cells and hints. */
export function htmlView(r: ConnectivityReport, refreshSeconds?: number): string {
  const cellAt = new Map(r.cells.map((c) => [`${c.src}>${c.dst}`, c]));
  const legacyCount = r.nodes.filter((n) => n.overlay === 'legacy').length;
  const title = (c: MatrixCell) =>
    `${c.src} (${c.srcOverlay}) -> ${c.dst} (${c.dstOverlay}): ${c.mark}` + c.protocols.map((p) => `\n${p.protocol}: ${p.mark === 'unknown' ? `unknown (${p.why})` : `${pct(p.successRatio)} of ${p.samples}, p50 ${ms(p.rttP50Ms)}`}`).join('') + (c.why ? `\n${c.why}` : '');
  const header = r.nodes.map((n, i) => `<th class="col ${n.overlay}${i === legacyCount ? ' split' : ''}" title="${esc(n.name)}"><span>${esc(n.name)}</span></th>`).join('');
  const rows = r.nodes.map((src, row) => {
    const tds = r.nodes.map((dst, i) => {
      const split = i === legacyCount ? ' split' : '';
      if (src === dst) return `<td class="self${split}"></td>`;
      const c = cellAt.get(`${src.name}>${dst.name}`);
      const mark = c?.mark ?? 'unknown';
      return `<td class="cell ${mark}${split}" data-src="${esc(src.name)}" data-dst="${esc(dst.name)}" data-mark="${mark}" title="${esc(c ? title(c) : 'no data')}">${markSymbol[mark]}</td>`;
    }).join('');
    return `<tr${row === legacyCount && row > 0 ? ' class="split-row"' : ''}><th class="row ${src.overlay}" title="${esc(src.rowProblem ?? '')}">${esc(src.name)} <small>${src.overlay}</small></th>${tds}</tr>`;
  }).join('\n');
  const summary = overlayPairs.map((p) => {
    const s = r.summary[p];
    return `<tr data-pair="${p}" data-total="${s.total}" data-reachable="${s.reachable}" data-lossy="${s.lossy}" data-unreachable="${s.unreachable}" data-unknown="${s.unknown}"><th>${esc(p)}</th><td>${s.total}</td><td class="reachable">${s.reachable}</td><td class="lossy">${s.lossy}</td><td class="unreachable">${s.unreachable}</td><td class="unknown">${s.unknown}</td></tr>`;
  }).join('\n');
  const findings = r.findings.filter((f) => f.severity !== 'INFO').map((f) => `<li class="${f.severity.toLowerCase()}">${esc(f.message)}</li>`).join('\n');
  const hints = r.hints.map((h) => `<li data-cause="${h.cause}"><b>${h.cause}</b>: ${esc(h.message)}</li>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">${refreshSeconds ? `<meta http-equiv="refresh" content="${refreshSeconds}">` : ''}<title>Connectivity: ${r.verdict}</title>
<style>
body{font:14px system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px} .verdict{padding:2px 10px;border-radius:4px;color:#fff}
.PASS{background:#2e7d32}.FAIL{background:#c62828}.UNKNOWN{background:#6a1b9a}
table.heat{border-collapse:collapse} table.heat td,table.heat th{border:1px solid #fff;text-align:center}
td.cell{width:22px;height:22px;font:bold 12px monospace;color:#fff}
td.cell.reachable{background:#43a047}td.cell.lossy{background:#f9a825}td.cell.unreachable{background:#e53935}td.cell.unknown{background:#8e24aa}td.cell.unprobed{background:#e0e0e0;color:#999}td.self{background:#f5f5f5}
th.col{height:110px;vertical-align:bottom;font-weight:normal} th.col span{writing-mode:vertical-rl;transform:rotate(180deg)}
th.row{text-align:right;padding-right:6px;font-weight:normal;white-space:nowrap}
.split{border-left:3px solid #333!important} tr.split-row>*{border-top:3px solid #333!important}
table.summary{border-collapse:collapse;margin-top:16px} table.summary td,table.summary th{border:1px solid #ccc;padding:4px 10px}
table.summary td{text-align:right}table.summary td.reachable{color:#2e7d32}table.summary td.unreachable{color:#c62828;font-weight:bold}table.summary td.lossy{color:#f57f17;font-weight:bold}table.summary td.unknown{color:#6a1b9a;font-weight:bold}
li.fail{color:#c62828} li.unknown{color:#6a1b9a}
</style></head>
<body>
<h1>Connectivity <span id="verdict" class="verdict ${r.verdict}">${r.verdict}</span></h1>
<p>${r.nodes.length} nodes; evidence since ${esc(r.since)}, read at ${esc(r.readAt)}${r.focus.length ? `; focus ${esc(r.focus.join(', '))}` : ''}. Rows are sources, columns destinations; legacy nodes first, then Cilium.</p>
<table class="heat" id="matrix"><tr><th></th>${header}</tr>
${rows}
</table>
<table class="summary" id="summary"><tr><th>overlays (src->dst)</th><th>cells</th><th>reachable</th><th>lossy</th><th>unreachable</th><th>unknown</th></tr>
${summary}
</table>
${findings ? `<h2>Failing cells</h2><ul id="findings">\n${findings}\n</ul>` : ''}
${hints ? `<h2>Likely causes</h2><ul id="hints">\n${hints}\n</ul>` : ''}
</body></html>
`;
}
