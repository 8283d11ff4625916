import { parentPort, workerData } from 'node:worker_threads';
import DKIM from 'nodemailer/lib/dkim';
import { signWith } from './dkim-signer.ts';

// One signing thread: takes message bytes, answers with the signed bytes.
const dkim = new DKIM(workerData as DKIM.Options);
parentPort!.on('message', ({ id, message }: { id: number; message: Uint8Array }) => {
  signWith(dkim, Buffer.from(message.buffer, message.byteOffset, message.byteLength)).then(
    (signed) => parentPort!.postMessage({ id, signed }, [signed.buffer as ArrayBuffer]),
    (error: Error) => parentPort!.postMessage({ id, error: error.message }),
  );
});
