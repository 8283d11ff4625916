import { connect, type Socket } from 'node:net';

/**
 * The listener's ceiling: a minimal pipelined SMTP client that sends one prepared message
 * over and over, with no MIME work and no database. Nothing real can be faster than this.
 */
export async function blastRawSmtp(options: {
  port: number;
  message: Buffer;
  messages: number;
  connections: number;
}): Promise<{ sent: number; seconds: number }> {
  const body = Buffer.concat([dotStuff(options.message), Buffer.from('\r\n.\r\n')]);
  const perConnection = Math.ceil(options.messages / options.connections);
  const started = process.hrtime.bigint();
  const counts = await Promise.all(
    Array.from({ length: options.connections }, () =>
      runConnection(options.port, body, perConnection),
    ),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { sent: counts.reduce((a, b) => a + b, 0), seconds };
}

function dotStuff(message: Buffer): Buffer {
  return Buffer.from(message.toString('latin1').replace(/(^|\r\n)\./g, '$1..'), 'latin1');
}

async function runConnection(port: number, body: Buffer, messages: number): Promise<number> {
  const socket = connect(port, '127.0.0.1');
  const replies = replyReader(socket);
  await replies.next(); // greeting
  socket.write('EHLO bench.local\r\n');
  await replies.next();
  let sent = 0;
  for (let i = 0; i < messages; i++) {
    socket.write(`MAIL FROM:<bench@bench.local>\r\nRCPT TO:<reader${i}@example.com>\r\nDATA\r\n`);
    await replies.next(); // 250 sender
    await replies.next(); // 250 recipient
    await replies.next(); // 354
    socket.write(body);
    const reply = await replies.next();
    if (reply.startsWith('250')) sent++;
  }
  socket.write('QUIT\r\n');
  socket.end();
  return sent;
}

function replyReader(socket: Socket) {
  const waiting: ((line: string) => void)[] = [];
  const ready: string[] = [];
  let buffer = '';
  socket.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('latin1');
    let end: number;
    while ((end = buffer.indexOf('\r\n')) >= 0) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (line[3] === '-') continue; // a multi-line reply goes on
      const resolve = waiting.shift();
      if (resolve) resolve(line);
      else ready.push(line);
    }
  });
  return {
    next: () =>
      new Promise<string>((resolve) => {
        const line = ready.shift();
        if (line !== undefined) resolve(line);
        else waiting.push(resolve);
      }),
  };
}
