import request from 'supertest';
import { createMailTransport } from '../../src/delivery/transport.ts';
import { DeliveryWorker } from '../../src/delivery/worker.ts';
import { createLogger } from '../../src/log.ts';
import { startSmtpCapture, type CapturedMail, type SmtpCapture } from '../helpers/smtp-capture.ts';
import { createTestApp, type TestApp } from '../helpers/test-app.ts';

export interface ReaderFixture extends TestApp {
  smtp: SmtpCapture;
  /** Runs the real delivery worker until the outbox is empty; returns the mail captured so far. */
  deliver(): Promise<CapturedMail[]>;
  newsletter(slug: string, name: string, extra?: Record<string, unknown>): Promise<void>;
  subscribe(body: Record<string, unknown>, ip?: string): request.Test;
}

/** The real app, a real SMTP listener and the real delivery worker, on a database of its own. */
export async function createReaderFixture(
  env: Record<string, string> = {},
): Promise<ReaderFixture> {
  const smtp = await startSmtpCapture();
  const t = await createTestApp({ SMTP_URL: smtp.url, ...env });
  const logger = createLogger('silent');
  const transport = createMailTransport({ smtpUrl: smtp.url, dataDir: t.config.dataDir, logger });
  const worker = new DeliveryWorker({
    db: t.database.db,
    transport,
    logger,
    messageIdDomain: t.config.messageIdDomain,
  });
  return {
    ...t,
    smtp,
    async deliver() {
      while ((await worker.runOnce()) > 0);
      return smtp.messages;
    },
    async newsletter(slug, name, extra = {}) {
      await request(t.app)
        .post('/api/v1/newsletters')
        .set('Authorization', `Bearer ${t.adminToken}`)
        .send({ slug, name, ...extra })
        .expect(201);
    },
    subscribe(body, ip = '203.0.113.7') {
      return request(t.app).post('/api/v1/subscriptions').set('X-Forwarded-For', ip).send(body);
    },
    async close() {
      transport.close();
      await smtp.close();
      await t.close();
    },
  };
}

/** The path of the first link to `/kind/…` in a mail's text part. */
export function linkIn(
  mail: CapturedMail,
  kind: 'confirm' | 'unsubscribe' | 'preferences',
): string {
  const match = new RegExp(`http://news\\.test(/${kind}/[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+)`).exec(
    mail.parsed.text ?? '',
  );
  if (!match) throw new Error(`no ${kind} link in mail: ${mail.parsed.text}`);
  return match[1]!;
}
