import { createSocket, type RemoteInfo } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import dnsPacket, { type Answer } from 'dns-packet';

/** What a zone answers for one name: records, "no such domain", or silence (a dead server). */
export type Zone = Record<string, Answer[] | 'nxdomain' | 'silent'>;

export interface DnsServer {
  /** host:port, for dns.setServers. */
  address: string;
  /** Every name asked for, in order. */
  asked: string[];
  close(): Promise<void>;
}

/** A real DNS server over UDP on 127.0.0.1, answering from `zone` for the tests that need DNS. */
export async function startDnsServer(zone: Zone): Promise<DnsServer> {
  const socket = createSocket('udp4');
  const asked: string[] = [];
  socket.on('message', (message: Buffer, peer: RemoteInfo) => {
    const query = dnsPacket.decode(message);
    const question = query.questions?.[0];
    if (!question) return;
    asked.push(question.name.toLowerCase());
    const entry = zone[question.name.toLowerCase()];
    if (entry === 'silent') return;
    const answers = Array.isArray(entry)
      ? entry.filter((answer) => answer.type === question.type)
      : [];
    // The response code is the low four bits of the flags; 3 is NXDOMAIN.
    const rcode = entry === undefined || entry === 'nxdomain' ? 3 : 0;
    const reply = dnsPacket.encode({
      type: 'response',
      id: query.id,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | rcode,
      questions: [question],
      answers,
    });
    socket.send(reply, peer.port, peer.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    asked,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
