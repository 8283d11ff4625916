import { createConnection, createServer, type Socket } from 'node:net';

export interface FlakyRelay {
  url: string;
  /** The most connections open at once since the relay started. */
  peakConnections: number;
  /** Connections cut while the client was about to hand over a message. */
  dropped: number;
  /** Decides, per DATA command, whether to cut the connection before the message gets through. */
  dropOnData: () => boolean;
  close(): Promise<void>;
}

/**
 * A TCP relay in front of the SMTP listener: it counts concurrent connections and can cut one at
 * the DATA command, so the message never reaches the listener (a drop, never a hidden delivery).
 */
export async function startFlakyRelay(targetPort: number): Promise<FlakyRelay> {
  let open = 0;
  const sockets = new Set<Socket>();
  const relay: FlakyRelay = {
    url: '',
    peakConnections: 0,
    dropped: 0,
    dropOnData: () => false,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  const server = createServer((client) => {
    open += 1;
    relay.peakConnections = Math.max(relay.peakConnections, open);
    const upstream = createConnection({ port: targetPort, host: '127.0.0.1' });
    sockets.add(client).add(upstream);
    const cut = () => {
      client.destroy();
      upstream.destroy();
    };
    client.once('close', () => {
      open -= 1;
      sockets.delete(client);
      upstream.destroy();
    });
    upstream.once('close', () => {
      sockets.delete(upstream);
      client.destroy();
    });
    client.on('error', cut);
    upstream.on('error', cut);
    client.on('data', (chunk: Buffer) => {
      if (/(^|\r\n)DATA\r\n/i.test(chunk.toString('latin1')) && relay.dropOnData()) {
        relay.dropped += 1;
        cut();
        return;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  relay.url = `smtp://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  return relay;
}
