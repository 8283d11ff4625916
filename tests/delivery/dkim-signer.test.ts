import { generateKeyPairSync } from 'node:crypto';
import { dkimVerify } from 'mailauth';
import { describe, expect, it } from 'vitest';
import { DkimSigner } from '../../src/delivery/dkim-signer.ts';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const options = {
  domainName: 'news.test',
  keySelector: 'bs2026',
  privateKey: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
};
const record = `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`;

const message = (n: number) =>
  Buffer.from(
    `From: Desk <desk@news.test>\r\nTo: r${n}@example.com\r\nSubject: n${n}\r\nMessage-ID: <${n}@news.test>\r\n\r\nbody ${n}\r\n`,
  );

async function verdict(signed: Buffer): Promise<string | undefined> {
  const result = await dkimVerify(signed, {
    resolver: async (name: string, type: string) => {
      if (name === 'bs2026._domainkey.news.test' && type === 'TXT') return [[record]];
      throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
    },
  });
  return result.results[0]?.status.result;
}

describe('DKIM signer', () => {
  it.each([0, 2])('signs every message so that it verifies, with %i threads', async (threads) => {
    const signer = new DkimSigner(options, threads);
    try {
      const signed = await Promise.all(
        Array.from({ length: 6 }, (_, n) => signer.sign(message(n))),
      );
      for (const [n, bytes] of signed.entries()) {
        expect(bytes.toString()).toContain(`Subject: n${n}`);
        expect(await verdict(bytes)).toBe('pass');
      }
    } finally {
      await signer.close();
    }
  });

  it('keeps signing on the calling thread after it is closed', async () => {
    const signer = new DkimSigner(options, 1);
    await signer.close();
    expect(await verdict(await signer.sign(message(9)))).toBe('pass');
  });
});
