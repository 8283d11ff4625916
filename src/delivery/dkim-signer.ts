import { Worker } from 'node:worker_threads';
import DKIM from 'nodemailer/lib/dkim';

/**
 * DKIM-signs finished messages. Signing costs an RSA operation per message, so with `threads` it
 * runs on other cores (worker threads) while the main thread keeps feeding the relays.
 */
export class DkimSigner {
  private readonly local: DKIM;
  private readonly threads: Worker[] = [];
  private readonly waiting = new Map<
    number,
    { resolve: (b: Buffer) => void; reject: (e: Error) => void }
  >();
  private next = 0;

  constructor(options: DKIM.Options, threads: number) {
    this.local = new DKIM(options);
    const file = new URL(
      import.meta.url.endsWith('.ts') ? './dkim-thread.ts' : './dkim-thread.js',
      import.meta.url,
    ).href;
    // TypeScript sources (tests, tsx) need tsx's loader registered in the thread first.
    const source = file.endsWith('.ts')
      ? `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(file)}); })`
      : `import(${JSON.stringify(file)})`;
    for (let i = 0; i < threads; i++) {
      const thread = new Worker(source, { eval: true, workerData: options });
      thread.on('error', (error) => {
        for (const waiter of this.waiting.values()) waiter.reject(error);
        this.waiting.clear();
      });
      thread.on(
        'message',
        ({ id, signed, error }: { id: number; signed?: Uint8Array; error?: string }) => {
          const waiter = this.waiting.get(id);
          this.waiting.delete(id);
          if (error || !signed) waiter?.reject(new Error(`dkim signing failed: ${error}`));
          else waiter?.resolve(Buffer.from(signed.buffer, signed.byteOffset, signed.byteLength));
        },
      );
      thread.unref();
      this.threads.push(thread);
    }
  }

  sign(message: Buffer): Promise<Buffer> {
    if (this.threads.length === 0) return signWith(this.local, message);
    const id = this.next++;
    const thread = this.threads[id % this.threads.length]!;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      thread.postMessage({ id, message });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.threads.splice(0).map((thread) => thread.terminate()));
    for (const waiter of this.waiting.values()) waiter.reject(new Error('dkim signer closed'));
    this.waiting.clear();
  }
}

export async function signWith(dkim: DKIM, message: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of dkim.sign(message)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
