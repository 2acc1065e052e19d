// One parser per kind of value a person types: counts, ratios, durations, ports, grace periods,
// Kubernetes names, label selectors, CIDRs, image references. The plugin, the agent and the lab
// parse every flag and positional through these, before anything touches a cluster, so a typo is
// refused with one line that names the flag and the form it takes, never turned into NaN or a
// silent default.
import ipaddr from 'ipaddr.js';
import { UsageError } from './errors.js';

/** A value that does not have the expected form; `expected` says which form, for the message. */
export class ValueError extends Error {
  constructor(readonly expected: string) {
    super(expected);
    this.name = 'ValueError';
  }
}

/** Turns text into a value or throws ValueError. */
export type Parser<T> = (text: string) => T;

/** The one-line refusal for a bad value of `name` (a flag: "--parallelism", or a positional: "node"). */
export function badValue(name: string, text: string, expected: string): UsageError {
  return new UsageError(`${name} ${JSON.stringify(text)}: expected ${expected}`);
}

/** Applies `parse` to the text given for `name` ("--parallelism", or a positional: "node"), throwing a UsageError naming it. */
export function parseValue<T>(name: string, text: string, parse: Parser<T>): T {
  try {
    return parse(text);
  } catch (err) {
    if (err instanceof ValueError) throw badValue(name, text, err.expected);
    throw err;
  }
}

/** `parseValue` for the flag --`flag`. */
export const parseFlag = <T>(flag: string, text: string, parse: Parser<T>): T => parseValue(`--${flag}`, text, parse);

/**
 * A yargs `coerce` for a flag taking one value: parses the text of the last occurrence (as kubectl
 * does with a repeated flag) and throws a UsageError naming the flag. Absent stays undefined.
 */
export function flagCoercion<T>(flag: string, parse: Parser<T>): (raw: unknown) => T {
  return (raw: unknown) => {
    const last = Array.isArray(raw) ? raw.at(-1) : raw;
    if (last === undefined) return undefined as T;
    return parseFlag(flag, String(last), parse);
  };
}

/** For a flag with `choices` (which yargs checks): the last occurrence of a repeated flag counts. */
export const lastOccurrence = <T>(raw: T | T[]): T => (Array.isArray(raw) ? (raw.at(-1) as T) : raw);

/** The same for a positional argument (`name` as the usage line shows it). */
export function positionalCoercion<T>(name: string, parse: Parser<T>): (raw: unknown) => T {
  return (raw: unknown) => parseValue(name, String(Array.isArray(raw) ? raw.at(-1) : raw), parse);
}

/** The same for a flag or positional that takes a list ("--focus", or "node"): each item is parsed. */
export function listCoercion<T>(name: string, parse: Parser<T>): (raw: unknown) => T[] {
  return (raw: unknown) => {
    const items = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
    return items.map((item) => parseValue(name, String(item), parse));
  };
}

const wholeNumber = /^[+-]?\d+$/;

/** A whole number from `min` to `max`. */
export function integer(min: number, max: number): Parser<number> {
  return (text) => {
    const t = text.trim();
    const n = Number(t);
    if (!wholeNumber.test(t) || !Number.isSafeInteger(n) || n < min || n > max) throw new ValueError(`a whole number from ${min} to ${max}`);
    return n;
  };
}

/** A TCP or UDP port. */
export const port: Parser<number> = (text) => {
  try {
    return integer(1, 65535)(text);
  } catch {
    throw new ValueError('a port number from 1 to 65535');
  }
};

/** A port, or 0 for "none" (a legacy CNI without a UDP tunnel). */
export const portOrNone: Parser<number> = (text) => {
  try {
    return integer(0, 65535)(text);
  } catch {
    throw new ValueError('a port number from 1 to 65535, or 0 when there is none');
  }
};

/** A share from 0 to 1 ("0.95" is 95%); `aboveZero` refuses 0. */
export function ratio(opts: { aboveZero?: boolean } = {}): Parser<number> {
  const expected = opts.aboveZero ? 'a number above 0 and at most 1 (0.95 means 95%)' : 'a number from 0 to 1 (0.95 means 95%)';
  return (text) => {
    const t = text.trim();
    const n = Number(t);
    if (!/^(\d+(\.\d*)?|\.\d+)$/.test(t) || !(n <= 1) || (opts.aboveZero ? n <= 0 : n < 0)) throw new ValueError(expected);
    return n;
  };
}

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds in a duration as kubectl takes it ("90s", "10m", "1h30m", "250ms") or plain seconds ("600"); undefined when `text` is none. */
export function parseDuration(text: string): number | undefined {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.round(Number(t) * 1000);
  const parts = [...t.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== t) return undefined;
  return Math.round(parts.reduce((sum, p) => sum + Number(p[1]) * durationUnits[p[2]!]!, 0));
}

const unitText = (ms: number): string => {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
};

/** A duration ("90s", "10m", "1h30m", or seconds) from `minMs` to `maxMs`, in milliseconds. */
export function duration(minMs: number, maxMs: number): Parser<number> {
  const expected = `a duration from ${unitText(minMs)} to ${unitText(maxMs)}, like 90s, 10m or 1h30m`;
  return (text) => {
    const ms = parseDuration(text);
    if (ms === undefined || !(ms >= minMs && ms <= maxMs)) throw new ValueError(expected);
    return ms;
  };
}

/** A time in RFC 3339 (2026-11-24T10:00:00Z). */
export const timestamp: Parser<Date> = (text) => {
  const t = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(text.trim()) || !Number.isFinite(t)) throw new ValueError('an RFC 3339 time like 2026-11-24T10:00:00Z');
  return new Date(t);
};

/** A fixed time (the start of a change), or a span back from every read. */
export type Since = { at: Date } | { backMs: number };

/** An RFC 3339 time, or a duration back from now from 1s to `maxMs` (connectivity --since). */
export function timeOrSpan(maxMs: number): Parser<Since> {
  return (text) => {
    try {
      return /^\d{4}-/.test(text.trim()) ? { at: timestamp(text) } : { backMs: duration(1000, maxMs)(text) };
    } catch {
      throw new ValueError('a duration back from now like 30s or 5m, or an RFC 3339 time like 2026-11-24T10:00:00Z');
    }
  };
}

/** The start of the evidence for a read at `now`. */
export function sinceTime(since: Since, now: number): Date {
  return 'at' in since ? since.at : new Date(now - since.backMs);
}

const dnsLabelPattern = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** A DNS-1123 label (namespaces, Helm releases): lowercase letters, digits and '-', at most `max` characters. */
export function dnsLabel(what: string, max = 63): Parser<string> {
  return (text) => {
    if (text.length > max || !dnsLabelPattern.test(text)) throw new ValueError(`${what} (lowercase letters, digits and '-', starting and ending with a letter or digit, at most ${max} characters)`);
    return text;
  };
}

/** A DNS-1123 subdomain (node names, most object names). */
export function dnsSubdomain(what: string): Parser<string> {
  return (text) => {
    if (text.length > 253 || !text.split('.').every((part) => dnsLabelPattern.test(part))) {
      throw new ValueError(`${what} (a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters)`);
    }
    return text;
  };
}

export const nodeName = dnsSubdomain('a node name');
export const namespace = dnsLabel('a namespace name');
export const objectName = dnsSubdomain('an object name');

const qualifiedNamePart = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

function isLabelKey(key: string): boolean {
  const slash = key.indexOf('/');
  const [prefix, name] = slash < 0 ? [undefined, key] : [key.slice(0, slash), key.slice(slash + 1)];
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !prefix.split('.').every((p) => dnsLabelPattern.test(p)))) return false;
  return name.length > 0 && name.length <= 63 && qualifiedNamePart.test(name);
}

const isLabelValue = (value: string) => value === '' || (value.length <= 63 && qualifiedNamePart.test(value));

/** A label key, optionally prefixed: io.cilium.migration/cilium-default. */
export const labelKey: Parser<string> = (text) => {
  if (!isLabelKey(text)) throw new ValueError('a label key like example.com/name (a name of at most 63 letters, digits, \'-\', \'_\' or \'.\', optionally after a DNS subdomain and \'/\')');
  return text;
};

const selectorForm = 'a label selector like app=web, tier!=db, env in (a,b), !legacy';

/** Splits at the commas that are not inside parentheses. */
function splitRequirements(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
    if (depth < 0 || depth > 1) throw new ValueError(selectorForm);
  }
  if (depth !== 0) throw new ValueError(selectorForm);
  parts.push(text.slice(start));
  return parts.map((p) => p.trim());
}

/** A label selector as kubectl takes it (equality, set and existence requirements, comma-separated). */
export const labelSelector: Parser<string> = (text) => {
  if (text.trim() === '') throw new ValueError(selectorForm);
  for (const req of splitRequirements(text)) {
    let m: RegExpExecArray | null;
    if ((m = /^!\s*(\S+)$/.exec(req))) {
      if (!isLabelKey(m[1]!)) throw new ValueError(selectorForm);
    } else if ((m = /^(\S+?)\s*(==|!=|=)\s*(\S*)$/.exec(req))) {
      if (!isLabelKey(m[1]!) || !isLabelValue(m[3]!)) throw new ValueError(selectorForm);
    } else if ((m = /^(\S+)\s+(in|notin)\s*\(([^()]*)\)$/.exec(req))) {
      const values = m[3]!.split(',').map((v) => v.trim());
      if (!isLabelKey(m[1]!) || !values.every(isLabelValue)) throw new ValueError(selectorForm);
    } else if ((m = /^(\S+)\s*(<|>)\s*(-?\d+)$/.exec(req))) {
      if (!isLabelKey(m[1]!)) throw new ValueError(selectorForm);
    } else if (!isLabelKey(req)) {
      throw new ValueError(selectorForm);
    }
  }
  return text;
};

/** A container image reference: no spaces, and a well-formed digest when it carries one. */
export const imageReference: Parser<string> = (text) => {
  const expected = 'an image reference like registry.example.com/name:tag or name@sha256:<64 hex digits>';
  if (!/^[a-z0-9][\w.\-/:]*(@sha256:[0-9a-f]{64})?$/.test(text)) throw new ValueError(expected);
  return text;
};

/** A Cilium version: 1.16, 1.16.3, v1.18.0-rc.1. */
export const ciliumVersion: Parser<string> = (text) => {
  if (!/^v?\d+\.\d+(\.\d+)?([-+][0-9A-Za-z.-]+)?$/.test(text.trim())) throw new ValueError('a version like 1.16 or 1.16.3');
  return text.trim();
};

/** Free text that must not be empty (a chart reference, a command). */
export function nonEmpty(what: string): Parser<string> {
  return (text) => {
    if (text.trim() === '') throw new ValueError(what);
    return text;
  };
}

/** The --restart-command template: a command with {node} in it. */
export const restartCommandTemplate: Parser<string> = (text) => {
  if (!text.includes('{node}') || text.trim() === '{node}') throw new ValueError('a command containing {node}, e.g. "ssh {node} sudo systemctl reboot"');
  return text;
};

export interface CidrLimits {
  /** What the range is, for the message ("a pod CIDR"). */
  what: string;
  /** Shortest and longest IPv4 prefix that make sense for this range. */
  ipv4: [number, number];
  ipv6: [number, number];
}

/** Pod networks: every node takes a /24 (IPv4) out of them, so they must be wider than that. */
export const podCidrLimits: CidrLimits = { what: 'a pod CIDR', ipv4: [8, 23], ipv6: [48, 112] };
export const serviceCidrLimits: CidrLimits = { what: 'a service CIDR', ipv4: [8, 28], ipv6: [100, 120] };

/** A CIDR that is a network address ("10.245.0.0/16", not "10.245.1.7/16") with a prefix in `limits`. */
export function cidr(limits: CidrLimits): Parser<string> {
  const expected = `${limits.what} like 10.245.0.0/16 (a network address with an IPv4 prefix from /${limits.ipv4[0]} to /${limits.ipv4[1]}, IPv6 /${limits.ipv6[0]} to /${limits.ipv6[1]})`;
  return (text) => {
    let parsed: [ipaddr.IPv4 | ipaddr.IPv6, number];
    try {
      parsed = ipaddr.parseCIDR(text.trim());
    } catch {
      throw new ValueError(expected);
    }
    const [addr, prefix] = parsed;
    const [min, max] = addr.kind() === 'ipv4' ? limits.ipv4 : limits.ipv6;
    const network = addr.kind() === 'ipv4' ? ipaddr.IPv4.networkAddressFromCIDR(text.trim()) : ipaddr.IPv6.networkAddressFromCIDR(text.trim());
    if (prefix < min || prefix > max || network.toString() !== addr.toString()) throw new ValueError(expected);
    return text.trim();
  };
}

/** A comma-separated list of CIDRs, each as `cidr(limits)` takes it; `optional` also takes none. */
export function cidrList(limits: CidrLimits, opts: { optional?: boolean } = {}): Parser<string[]> {
  const one = cidr(limits);
  return (text) => {
    const items = text.split(',').map((s) => s.trim()).filter(Boolean);
    if (items.length === 0 && !opts.optional) throw new ValueError(`one or more comma-separated ${limits.what}s`);
    return items.map(one);
  };
}

/** A comma-separated list of one or more of `choices` ("icmp,http"), each once, in the order given. */
export function choiceList<T extends string>(choices: readonly T[]): Parser<T[]> {
  const expected = `one or more of ${choices.join(', ')}, comma-separated`;
  return (text) => {
    const items = [...new Set(text.split(',').map((s) => s.trim()).filter(Boolean))];
    if (items.length === 0 || items.some((i) => !(choices as readonly string[]).includes(i))) throw new ValueError(expected);
    return items as T[];
  };
}

/** "HOST:PORT", "[v6]:PORT", ":PORT" or "PORT"; the host defaults to loopback. Port 0 picks a free one. */
export const listenAddress: Parser<{ host: string; port: number }> = (text) => {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text) ?? /^()()(\d+)$/.exec(text);
  const p = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(p) || p < 0 || p > 65535) throw new ValueError('an address to listen on, HOST:PORT like 127.0.0.1:8080 (or :8080 for loopback)');
  return { host: m[1] || m[2] || '127.0.0.1', port: p };
};

/**
 * kubectl delete's rule for --grace-period: -1 keeps each pod's own period, 0 deletes at once and is
 * only accepted together with --force (a pod deleted at once may still be running on its node).
 */
export function gracePeriod(seconds: number, force: boolean): number | undefined {
  if (seconds === 0 && !force) throw new UsageError('--grace-period "0": expected -1 (each pod\'s own) or 1 and more seconds; 0 (immediate) needs --force, as with kubectl delete');
  return seconds < 0 ? undefined : seconds;
}

/** Refuses `flag` without the flags it needs (e.g. --restart exec without --restart-command). */
export function requireCompanion(condition: boolean, flag: string, needs: string, example?: string): void {
  if (condition) throw new UsageError(`${flag} needs ${needs}${example ? `, e.g. ${example}` : ''}`);
}

/** Refuses two ranges that overlap, naming both flags. */
export function refuseOverlap(flag: string, value: string, otherFlag: string, other: string): void {
  const [a, b] = [ipaddr.parseCIDR(value), ipaddr.parseCIDR(other)];
  if (a[0].kind() !== b[0].kind()) return;
  const [wide, narrow] = a[1] <= b[1] ? [a, b] : [b, a];
  if (narrow[0].match(wide)) throw new UsageError(`${flag} ${JSON.stringify(value)}: expected a range that does not overlap ${otherFlag} ${other} (the two overlays must not share addresses)`);
}
