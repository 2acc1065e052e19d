// Renders a command's result in the format -o asked for.
import { stringify } from 'yaml';
import type { OutputFormat } from './context.js';

/** Machine formats print the data; table and wide print what `human` makes of it. */
export function render<T>(data: T, format: OutputFormat, human: (data: T, wide: boolean) => string): string {
  switch (format) {
    case 'json':
      return JSON.stringify(data, null, 2) + '\n';
    case 'yaml':
      return stringify(data);
    case 'wide':
      return human(data, true);
    case 'table':
      return human(data, false);
  }
}
