import ipaddr from 'ipaddr.js';

/**
 * The network a reader's requests are counted under: an IPv4 address itself, an IPv6 address's
 * /64, which one home or phone is usually handed whole and can pick addresses from at will.
 */
export function networkOf(ip: string): string {
  if (!ipaddr.isValid(ip)) return ip;
  const address = ipaddr.process(ip);
  if (address.kind() === 'ipv4') return address.toString();
  const prefix = (address as ipaddr.IPv6).parts.slice(0, 4);
  return `${new ipaddr.IPv6([...prefix, 0, 0, 0, 0]).toString()}/64`;
}
