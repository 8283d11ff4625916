import { randomBytes } from 'node:crypto';
import { encodeWords } from 'nodemailer/lib/mime-funcs';
import type { MessageCommon } from './prepared-message.ts';

export interface FrozenSend {
  id: number;
  subject: string;
  html: string;
  text: string;
}

export interface NewsletterIdentity {
  slug: string;
  name: string;
  fromName: string;
  fromEmail: string;
  replyTo: string | null;
}

export interface MailIdentity {
  /** The domain of Message-ID and List-Id. */
  domain: string;
  /** Feedback-ID's sender part (Gmail's feedback loop); absent means no header. */
  feedbackId?: string;
  unsubscribeMailto?: string;
}

/** Pure: what every reader's copy of one send has in common. */
export function newsletterMailCommon(
  send: FrozenSend,
  newsletter: NewsletterIdentity,
  identity: MailIdentity,
): MessageCommon {
  return {
    from: { name: newsletter.fromName, address: newsletter.fromEmail },
    replyTo: newsletter.replyTo,
    subject: send.subject,
    html: send.html,
    text: send.text,
    listId: `${encodeWords(newsletter.name, 'Q', 52)} <${newsletter.slug}.${identity.domain}>`,
    listUnsubscribeMailto: identity.unsubscribeMailto,
    feedbackId: identity.feedbackId
      ? `${send.id}:${newsletter.slug}:newsletter:${identity.feedbackId}`
      : undefined,
  };
}

/** A Message-ID on our domain that names the send and reader, unique per attempt. */
export function newsletterMessageId(
  domain: string,
  delivery: { sendId: number; subscriberId: number; attempts: number },
): string {
  const nonce = randomBytes(6).toString('hex');
  return `<send-${delivery.sendId}.${delivery.subscriberId}.${delivery.attempts}.${nonce}@${domain}>`;
}
