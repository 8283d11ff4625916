import { personalise, type CompiledMail, type MailTemplates } from '../digests/mail-templates.ts';

export interface MailNewsletter {
  id: number;
  name: string;
  description: string;
  locale: string;
  updated_at: Date | string;
}

const MAX_CACHED = 200;

// The placeholder itself: HTML escaping leaves it as is, and authors' copies are neutralised.
export const CONFIRM_URL_SLOT = '%%{confirm_url}%%';

/**
 * Compiles the confirmation and welcome mails once per newsletter set (MJML costs ~20 ms) and
 * keeps them; a newsletter's update time is part of the key, so an edit is picked up at once.
 * The cache only saves work: every instance compiles the same mail from the same rows.
 */
export class ReaderMail {
  private readonly compiled = new Map<string, Promise<CompiledMail>>();

  constructor(
    private readonly templates: MailTemplates,
    private readonly masthead: string,
    private readonly expiryDays: number,
  ) {}

  confirmation(newsletters: MailNewsletter[]): Promise<CompiledMail> {
    const key = `confirmation:${newsletters.map(versionOf).join(',')}`;
    return this.cached(key, () =>
      this.templates.compile('confirmation', {
        title: 'Please confirm your subscription',
        preheader: 'One click to confirm, then you are on the list.',
        masthead: this.masthead,
        locale: newsletters[0]?.locale ?? 'en',
        expiry_days: this.expiryDays,
        newsletters: newsletters.map(({ name, description }) => ({ name, description })),
      }),
    );
  }

  /** The confirmation mail with `CONFIRM_URL_SLOT` where the link goes, filled in by SQL. */
  confirmationWithSlot(newsletters: MailNewsletter[]): Promise<CompiledMail> {
    const key = `confirmation-slot:${newsletters.map(versionOf).join(',')}`;
    return this.cached(key, async () =>
      personalise(await this.confirmation(newsletters), { confirm_url: CONFIRM_URL_SLOT }),
    );
  }

  welcome(newsletter: MailNewsletter): Promise<CompiledMail> {
    return this.cached(`welcome:${versionOf(newsletter)}`, () =>
      this.templates.compile('welcome', {
        title: `Welcome to ${newsletter.name}`,
        masthead: this.masthead,
        locale: newsletter.locale,
        newsletter: { name: newsletter.name, description: newsletter.description },
      }),
    );
  }

  private cached(key: string, compile: () => Promise<CompiledMail>): Promise<CompiledMail> {
    let mail = this.compiled.get(key);
    if (!mail) {
      if (this.compiled.size >= MAX_CACHED) this.compiled.clear();
      mail = compile();
      this.compiled.set(key, mail);
      mail.catch(() => this.compiled.delete(key));
    }
    return mail;
  }
}

function versionOf(newsletter: MailNewsletter): string {
  return `${newsletter.id}@${new Date(newsletter.updated_at).getTime()}`;
}
