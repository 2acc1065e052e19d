// CIDR arithmetic on top of ipaddr.js: which overlay an address belongs to, whether ranges overlap.
import ipaddr from 'ipaddr.js';

export type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Parses "10.244.1.0/24"; throws a message naming the bad value. */
export function parseCidr(text: string): Cidr {
  try {
    return ipaddr.parseCIDR(text.trim());
  } catch {
    throw new Error(`"${text}" is not a CIDR (expected a form like 10.245.0.0/16)`);
  }
}

/** True when `ip` lies inside `cidr`; false for malformed input or mixed address families. */
export function cidrContains(cidr: string, ip: string): boolean {
  if (!ipaddr.isValid(ip)) return false;
  let range: Cidr;
  try {
    range = parseCidr(cidr);
  } catch {
    return false;
  }
  const addr = ipaddr.process(ip);
  return addr.kind() === range[0].kind() && addr.match(range);
}

/** True when the two ranges share at least one address. */
export function cidrsOverlap(a: string, b: string): boolean {
  const [ra, rb] = [parseCidr(a), parseCidr(b)];
  if (ra[0].kind() !== rb[0].kind()) return false;
  // Two prefixes overlap exactly when the shorter one contains the start of the longer one.
  const [wide, narrow] = ra[1] <= rb[1] ? [ra, rb] : [rb, ra];
  return narrow[0].match(wide);
}
