import { SMTPServer } from 'smtp-server';

/**
 * A discarding SMTP listener for benchmarks, run as its own process so it does not share
 * the measured process's event loop. Tells its parent its port, then its message count on request.
 */
let accepted = 0;
let bytes = 0;
const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS', 'AUTH'],
  logger: false,
  maxClients: 1000,
  size: 50 * 1024 * 1024,
  onData(stream, _session, callback) {
    stream.on('data', (chunk: Buffer) => (bytes += chunk.length));
    stream.on('end', () => {
      accepted++;
      callback();
    });
  },
});
server.listen(0, '127.0.0.1', () => {
  const address = server.server.address();
  process.send?.({ port: typeof address === 'object' && address ? address.port : 0 });
});
process.on('message', (message: string) => {
  if (message === 'count') process.send?.({ accepted, bytes });
  if (message === 'stop') server.close(() => process.exit(0));
});
