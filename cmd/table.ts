// kubectl-style tables (no borders, columns three spaces apart) through cli-table3.
import Table from 'cli-table3';

const borderless = {
  top: '', 'top-mid': '', 'top-left': '', 'top-right': '',
  bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
  left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '   ',
};

/** The header and rows as aligned columns. */
export function table(header: string[], rows: string[][]): string {
  const t = new Table({ head: header, chars: borderless, style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 } });
  t.push(...rows);
  return t.toString().split('\n').map((l) => l.trimEnd()).join('\n');
}
